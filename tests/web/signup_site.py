"""The signup form served for tests: a real server on 127.0.0.1 whose confirmation emails go to a
real SMTP server (aiosmtpd), and what the tests read back: mails, links, statuses, consents."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from pipeline.audience import consent
from pipeline.audience.consent import Consent
from pipeline.audience.subscribers import events_of, find
from pipeline.audience.tokens import Tokens
from pipeline.db.engine import Store
from pipeline.db.schema import subscribers
from pipeline.settings.workspace import Workspace
from pipeline.web.app import create_app
from tests.pages import Reply, fetch, post_form, wait_for
from tests.smtp_server import Received, SmtpTestServer
from tests.web.test_app import running

SECRET = "a-test-secret: 4f9Kq2ZxT7mB0wLs8Rj3"
OURS = "https://willowcreek-acupuncture.example"  # the origin of [unsubscribe] base_url
LINK = re.compile(r"https://willowcreek-acupuncture\.example/email/subscribe/confirm/\S+")


@dataclass
class Served:
    url: str  # http://127.0.0.1:PORT, no trailing slash
    store: Store
    workspace: Workspace
    tokens: Tokens
    smtp: SmtpTestServer

    @property
    def form_url(self) -> str:
        return f"{self.url}/subscribe"

    def sign_up(self, email: str, first_name: str = "", topics: tuple[str, ...] = (),
                headers: dict[str, str] | None = None, **extra: str) -> Reply:
        fields = [("email", email), ("first_name", first_name), *[("topic", t) for t in topics],
                  ("website", ""), ("consent_version", self.workspace.signup.version), *extra.items()]
        return post_form(self.form_url, fields, headers)

    def post_json(self, data: object, headers: dict[str, str] | None = None) -> Reply:
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        return fetch(self.form_url, "POST", body, "application/json", headers)

    def mails(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until `count` mails arrived, then return them all."""
        wait_for(lambda: len(self.smtp.received) >= count, f"{count} mail(s)", timeout)
        with self.smtp.lock:
            return list(self.smtp.received)

    def local(self, url: str) -> str:
        """A link written for base_url, as it reaches this server."""
        return url.replace(f"{OURS}/email", self.url)

    def link(self, mail: Received) -> str:
        """The confirmation link of a mail, from its text part, as it reaches this server."""
        body = mail.message.get_body(("plain",))
        assert body is not None
        found = LINK.search(body.get_content())
        assert found, "no confirmation link in the text part"
        return self.local(found.group(0))

    def status(self, email: str) -> str | None:
        with self.store.reading() as conn:
            found = find(conn, email)
        return found.status if found else None

    def subscriber(self, email: str) -> tuple[str | None, str | None, tuple[str, ...]]:
        with self.store.reading() as conn:
            found = find(conn, email)
        assert found is not None
        return found.status, found.first_name, found.tags

    def consents(self, email: str) -> list[Consent]:
        with self.store.reading() as conn:
            found = find(conn, email)
            return consent.of_subscriber(conn, found.id) if found else []

    def history(self, email: str) -> list[tuple[str, str]]:
        with self.store.reading() as conn:
            found = find(conn, email)
            return [(e.kind, e.source) for e in events_of(conn, found.id)] if found else []

    def count(self) -> int:
        with self.store.reading() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(subscribers)).scalar() or 0)


@contextmanager
def serving(workspace: Workspace, store: Store, smtp: SmtpTestServer, transport: str | None = None) -> Iterator[Served]:
    tokens = Tokens(SECRET)
    with running(create_app(workspace, store, tokens, transport or smtp.url)) as url:
        yield Served(url, store, workspace, tokens, smtp)
