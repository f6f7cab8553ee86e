"""Helpers for the tracking tests: a tracked workspace, its sent messages, and `campaign serve` on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from pipeline.audience.subscribers import Changes, add
from pipeline.audience.tokens import Tokens
from pipeline.db.engine import Store
from pipeline.db.schema import tracking_events
from pipeline.engagement.events import Event, events_of
from pipeline.settings.workspace import load_workspace
from pipeline.web.app import create_app
from tests.pages import wait_for
from tests.web.test_app import running

BASE = "https://willowcreek-acupuncture.example/email"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
BOOK = "https://willowcreek-acupuncture.example/book?utm_source=newsletter&utm_medium=email&utm_campaign=back-pain"


def track(root: Path, opens: bool = True, clicks: bool = True, extra: str = "") -> None:
    """Turn tracking on in the workspace's campaign.toml."""
    config = root / "campaign.toml"
    config.write_text(config.read_text(encoding="utf-8") + f"\n[tracking]\nopens = {str(opens).lower()}\n"
                      f"clicks = {str(clicks).lower()}\n{extra}", encoding="utf-8")


def readers(store: Store, count: int, start: int = 0, tags: set[str] | None = None,
            fields: dict[str, object] | None = None) -> list[str]:
    """Subscribers reader<n>@example.com, tagged back-pain (the example campaign's segment)."""
    addresses = [f"reader{n}@example.com" for n in range(start, start + count)]
    with store.transaction() as conn:
        for n, address in enumerate(addresses, start=start):
            add(conn, address, Changes(first_name=f"Reader{n}", tags={"back-pain", *(tags or set())},
                                       fields=dict(fields or {})), "test")
    return addresses


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str

    def clicks(self) -> list[str]:
        """The tracked links of the HTML part, in order (paths from /c/ on)."""
        return re.findall(r'href="' + re.escape(BASE) + r'/(c/[A-Za-z0-9_-]{36})"', self.html)

    def text_clicks(self) -> list[str]:
        return re.findall(re.escape(BASE) + r"/(c/[A-Za-z0-9_-]{36})", self.text)

    def pixel(self) -> str | None:
        found = re.findall(r'src="' + re.escape(BASE) + r'/(o/[A-Za-z0-9_-]{36})"', self.html)
        return found[0] if found else None


def outbox(root: Path) -> dict[str, Mail]:
    """The messages the Maildir outbox holds, by recipient."""
    found = {}
    for path in sorted((root / "outbox" / "new").iterdir()):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.SMTP)
        text, html = list(message.iter_parts())
        address = email.utils.parseaddr(message["To"])[1]
        found[address] = Mail(address, str(message["Subject"]), text.get_content(), html.get_content())
    return found


@contextmanager
def serving(root: Path, store: Store) -> Iterator[str]:
    """`campaign serve`'s app for the workspace at root, on a free port; its URL without the final /."""
    # Stopping writes the hits still in memory: it may take longer than the plain pages.
    with running(create_app(load_workspace(root), store, Tokens.of_workspace(root)), stop_within=15) as url:
        yield url


def recorded(store: Store) -> list[Event]:
    with store.reading() as conn:
        return events_of(conn)


def count_events(store: Store) -> int:
    with store.reading() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(tracking_events)).scalar() or 0)


def wait_events(store: Store, count: int, timeout: float = 10.0) -> list[Event]:
    wait_for(lambda: count_events(store) >= count, f"{count} events to be written", timeout)
    return recorded(store)
