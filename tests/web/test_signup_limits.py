"""The signup form's limits, counted in the database: per client address, per e-mail address, and
shared by every server process on one database."""

from __future__ import annotations

import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.audience import signup_limits
from pipeline.clock import utcnow
from pipeline.db.engine import Store
from pipeline.db.schema import signup_limits as limits_table
from pipeline.db.schema import subscribers
from pipeline.settings.workspace import load_workspace
from tests.pages import post_form
from tests.smtp_server import SmtpTestServer
from tests.web.signup_site import serving

FLOOD = 2000


def windows(length: signup_limits.timedelta) -> object:
    return signup_limits.window_start(utcnow(), length)


def test_a_flood_from_one_address_is_refused_without_a_flood_of_mail(workspace_dir: Path, store: Store,
                                                                     smtp_server: SmtpTestServer) -> None:
    workspace = load_workspace(workspace_dir)
    limit = workspace.signup.per_ip_per_hour
    with serving(workspace, store, smtp_server) as site:
        statuses: Counter[int] = Counter()
        first_window = windows(signup_limits.HOUR)
        started = time.monotonic()
        for n in range(FLOOD):
            reply = post_form(site.form_url, [("email", f"flood{n}@example.com"), ("first_name", "Bot")])
            statuses[reply.status] += 1
            if reply.status == 429:
                assert int(reply.headers["retry-after"]) >= 1
        elapsed = time.monotonic() - started
        turned = windows(signup_limits.HOUR) != first_window  # the hour changed mid-flood: one more window's worth
        allowed = limit * (2 if turned else 1)
        assert statuses == {200: allowed, 429: FLOOD - allowed}
        site.mails(allowed)
        time.sleep(0.5)  # anything still on its way
        assert len(site.smtp.received) == allowed
        assert site.count() == allowed
    assert elapsed < 60, f"the flood took {elapsed:.1f}s"
    with store.reading() as conn:
        # One counter row for the client address, and one per mailed address: no IP or address in clear.
        rows = conn.execute(sa.select(limits_table)).all()
        assert {row.scope for row in rows} == {"ip", "address"}
        assert all("127.0.0.1" not in row.key and "@" not in row.key for row in rows)


def test_five_confirmations_per_address_a_day_whatever_the_answer_says(workspace_dir: Path, store: Store,
                                                                      smtp_server: SmtpTestServer) -> None:
    with serving(load_workspace(workspace_dir), store, smtp_server) as site:
        day = windows(signup_limits.DAY)
        replies = [site.sign_up("ana@example.com") for _ in range(7)]
        assert {(r.status, r.text) for r in replies} == {(replies[0].status, replies[0].text)}
        expected = 5 if windows(signup_limits.DAY) == day else 7
        site.mails(expected)
        time.sleep(0.5)
        assert len(site.smtp.received) == expected
        # Another address is counted on its own.
        site.sign_up("ben@example.com")
        assert site.mails(expected + 1)[-1].recipients == ["ben@example.com"]


def test_the_limit_is_shared_by_every_server_on_the_database(workspace_dir: Path, store: Store, db_url: str,
                                                              smtp_server: SmtpTestServer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_SIGNUP_PER_IP_PER_HOUR", "3")
    workspace = load_workspace(workspace_dir)
    other = Store(db_url)  # a second process's own connections
    with ExitStack() as stack:
        first = stack.enter_context(serving(workspace, store, smtp_server))
        second = stack.enter_context(serving(workspace, other, smtp_server))
        hour = windows(signup_limits.HOUR)
        client = {"X-Forwarded-For": "203.0.113.7"}  # one reader behind the proxy on this machine
        replies = [first.sign_up("a@example.com", headers=client), second.sign_up("b@example.com", headers=client),
                   first.sign_up("c@example.com", headers=client), second.sign_up("d@example.com", headers=client),
                   first.sign_up("e@example.com", headers=client)]
        if windows(signup_limits.HOUR) == hour:
            assert [r.status for r in replies] == [200, 200, 200, 429, 429]
        # Another client address has its own count.
        assert first.sign_up("f@example.com", headers={"X-Forwarded-For": "198.51.100.2"}).status == 200
        first.mails(4)
    other.close()
    with store.reading() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(subscribers)).scalar() == 4
