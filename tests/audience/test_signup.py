"""The signup rules in the library, on SQLite and PostgreSQL: pending subscribers, confirmation
links, consent records, the limits' counters, purging, and that pending is never a recipient."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from pipeline.audience import consent, signup, signup_limits
from pipeline.audience.consent import Client
from pipeline.audience.recipients import preview_recipients
from pipeline.audience.segments import count, everyone, resolve, sample
from pipeline.audience.subscribers import (
    Changes,
    add,
    find,
    get,
    purge_pending,
    request_pending,
)
from pipeline.audience.tokens import Tokens
from pipeline.db.engine import Store
from pipeline.db.schema import consents, deliveries, subscriber_tags
from pipeline.delivery.sending import begin_send, plan
from pipeline.errors import InvalidToken
from pipeline.settings.signup import Signup
from pipeline.settings.workspace import Workspace

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TOKENS = Tokens("a-test-secret: 4f9Kq2ZxT7mB0wLs8Rj3")
KEYS = signup_limits.Keys(TOKENS.secret)
SETTINGS = Signup(enabled=True)
CLIENT = Client("203.0.113.9", "Test browser/1.0")


def form(email: str, first_name: str | None = None, topics: tuple[str, ...] = ()) -> signup.SignupForm:
    made, errors = signup.read_form({"email": [email], "first_name": [first_name or ""], "topic": list(topics)},
                                    {"sleep": "Sleep", "back-pain": "Back pain"})
    assert made is not None, errors
    return made


def sign_up(store: Store, email: str, now: datetime = NOW, settings: Signup = SETTINGS,
            first_name: str | None = None, topics: tuple[str, ...] = ()) -> signup.Signed:
    with store.transaction() as conn:
        return signup.request(conn, settings, KEYS, form(email, first_name, topics), CLIENT,
                              "https://clinic.example/news", now)


def test_read_form_checks_and_cleans_what_a_reader_sends() -> None:
    topics = {"sleep": "Sleep", "back-pain": "Back pain"}
    made, errors = signup.read_form({"email": [" Ana@Example.COM "], "first_name": ["  Ana\r\nLima  "],
                                     "topic": ["back-pain", "vip", "sleep"], "consent_version": ["2026-01"]}, topics)
    assert errors == {} and made == signup.SignupForm("Ana@example.com", "Ana Lima", ("sleep", "back-pain"), "2026-01")
    assert signup.read_form({}, topics) == (None, {"email": "Please enter your email address."})
    _, errors = signup.read_form({"email": ["ana@"], "first_name": ["x" * 101]}, topics)
    assert set(errors) == {"email", "first_name"}
    made, _ = signup.read_form({"email": ["ana@example.com"], "consent_version": ["<script>"]}, topics)
    assert made is not None and made.consent_version is None
    assert signup.is_robot({"website": ["", "http://spam.example"]}) and not signup.is_robot({"website": [" "]})


def test_a_signup_makes_a_pending_subscriber_with_a_consent_record(store: Store) -> None:
    signed = sign_up(store, "ana@example.com", first_name="Ana", topics=("sleep",))
    assert signed.mail and not signed.subscribed and signed.email == "ana@example.com"
    with store.reading() as conn:
        ana = get(conn, "ana@example.com")
        (record,) = consent.of_subscriber(conn, ana.id)
    assert (ana.status, ana.first_name, ana.tags, ana.consent_at) == ("pending", "Ana", ("sleep",), None)
    assert (record.id, record.method, record.version, record.text) == (signed.consent_id, "double-opt-in",
                                                                       SETTINGS.version, SETTINGS.consent_text)
    assert (record.requested_at, record.requested_ip, record.requested_user_agent) == (NOW, "203.0.113.9",
                                                                                       "Test browser/1.0")
    assert record.form_url == "https://clinic.example/news" and record.confirmed_at is None
    # Signing up again keeps one subscriber, adds the topics, and makes a new request.
    again = sign_up(store, "ANA@example.com", NOW + timedelta(hours=1), topics=("back-pain",))
    assert again.subscriber_id == signed.subscriber_id and again.consent_id != signed.consent_id
    with store.reading() as conn:
        assert get(conn, "ana@example.com").tags == ("back-pain", "sleep")
        assert get(conn, "ana@example.com").first_name == "Ana"  # an empty name leaves the one given before


def test_an_older_pages_consent_version_is_kept_without_a_text_we_cannot_vouch_for(store: Store) -> None:
    with store.transaction() as conn:
        made, _ = signup.read_form({"email": ["ana@example.com"], "consent_version": ["2025-01"]}, {})
        assert made is not None
        signed = signup.request(conn, SETTINGS, KEYS, made, CLIENT, None, NOW)
        (record,) = consent.of_subscriber(conn, signed.subscriber_id)  # type: ignore[arg-type]
    assert (record.version, record.text) == ("2025-01", None)


def test_confirming_subscribes_once_and_completes_the_consent(store: Store) -> None:
    signed = sign_up(store, "ana@example.com")
    assert signed.subscriber_id is not None and signed.consent_id is not None
    links = signup.ConfirmLinks(TOKENS)
    link = links.read(links.make(signed.subscriber_id, signed.consent_id, "ana@example.com", NOW))
    later = NOW + timedelta(minutes=3)
    results: list[signup.Confirmation] = []
    start = threading.Barrier(4)

    def press() -> None:  # the button pressed in four tabs at once
        start.wait(5)
        with store.transaction() as conn:
            results.append(signup.confirm(conn, links, link, Client("198.51.100.4", "Phone/2"), later))

    presses = [threading.Thread(target=press) for _ in range(4)]
    for thread in presses:
        thread.start()
    for thread in presses:
        thread.join(20)
    assert sorted(r.confirmed for r in results) == [False, False, False, True]
    assert {r.subscriber.status for r in results if r.subscriber} == {"subscribed"}
    with store.reading() as conn:
        ana = get(conn, "ana@example.com")
        (record,) = consent.of_subscriber(conn, ana.id)
    assert (ana.status, ana.consent_source, ana.consent_at) == ("subscribed", "web:signup-confirm", later)
    assert (record.confirmed_at, record.confirmed_ip, record.confirmed_user_agent) == (later, "198.51.100.4",
                                                                                       "Phone/2")


def test_confirmation_links_are_signed_bound_and_dated() -> None:
    links = signup.ConfirmLinks(TOKENS)
    token = links.make(7, 3, "ana@example.com", NOW)
    link = links.read(token)
    assert (link.subscriber_id, link.consent_id, link.issued) == (7, 3, NOW)
    assert link.binding == TOKENS.binding("ANA@example.com")
    assert not link.expired(NOW + timedelta(days=7), 7) and link.expired(NOW + timedelta(days=7, seconds=1), 7)
    assert link.expired(NOW - timedelta(hours=1), 7)  # issued "in the future": not ours
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), token.replace("7.3.", "8.3.", 1), "", "x.y",
                signup.ConfirmLinks(Tokens("another-secret-4f9Kq2ZxT7mB0wLs8Rj3")).make(7, 3, "ana@example.com", NOW),
                TOKENS.make(7, "ana@example.com")):  # an unsubscribe token is no confirmation
        with pytest.raises(InvalidToken):
            links.read(bad)


def test_a_link_answers_only_to_the_address_it_was_made_for(store: Store) -> None:
    signed = sign_up(store, "ana@example.com")
    links = signup.ConfirmLinks(TOKENS)
    assert signed.subscriber_id is not None and signed.consent_id is not None
    forged = links.read(links.make(signed.subscriber_id, signed.consent_id, "mallory@example.com", NOW))
    with store.transaction() as conn:
        assert signup.confirm(conn, links, forged, CLIENT, NOW) == signup.Confirmation(None, False)
        assert get(conn, "ana@example.com").status == "pending"


def test_suppressed_erased_and_subscribed_addresses_are_left_alone(store: Store) -> None:
    from pipeline.audience.subscribers import erase, set_status

    with store.transaction() as conn:
        add(conn, "sub@example.com", Changes(first_name="Sue"), "cli")
        left, _ = add(conn, "left@example.com", Changes(), "cli")
        set_status(conn, left, "unsubscribed", "cli")
        add(conn, "gone@example.com", Changes(), "cli")
        erase(conn, "gone@example.com", "cli")
    for email in ("sub@example.com", "left@example.com", "gone@example.com"):
        assert sign_up(store, email, first_name="Mallory", topics=("sleep",)) == signup.Signed()
    with store.reading() as conn:
        assert (get(conn, "sub@example.com").first_name, get(conn, "sub@example.com").tags) == ("Sue", ())
        assert get(conn, "left@example.com").status == "unsubscribed"
        assert find(conn, "gone@example.com") is None
        assert conn.execute(sa.select(sa.func.count()).select_from(consents)).scalar() == 0


def test_confirmation_mails_stop_after_the_daily_limit_per_address(store: Store) -> None:
    settings = Signup(enabled=True, per_address_per_day=2)
    day = signup_limits.window_start(NOW, signup_limits.DAY)
    sent = [sign_up(store, "ana@example.com", day + timedelta(hours=h), settings).mail for h in range(4)]
    assert sent == [True, True, False, False]
    assert sign_up(store, "ben@example.com", day + timedelta(hours=5), settings).mail
    assert sign_up(store, "ana@example.com", day + timedelta(days=1), settings).mail  # a new day
    with store.reading() as conn:  # the refused ones left no consent record behind
        assert len(consent.of_subscriber(conn, get(conn, "ana@example.com").id)) == 3


def test_client_limits_count_in_the_database_for_every_process(db_url: str) -> None:
    settings = Signup(enabled=True, per_ip_per_hour=3)
    first, second = Store(db_url), Store(db_url)
    hour = signup_limits.window_start(NOW, signup_limits.HOUR)
    answers = []
    for n, store in enumerate([first, second, first, second, first]):
        with store.transaction() as conn:
            answers.append(signup.client_allowed(conn, settings, KEYS, "203.0.113.9", hour + timedelta(minutes=n)))
    assert answers == [True, True, True, False, False]
    with first.transaction() as conn:
        assert signup.client_allowed(conn, settings, KEYS, "198.51.100.1", hour)  # another client
        assert signup.client_allowed(conn, settings, KEYS, "203.0.113.9", hour + signup_limits.HOUR)  # next hour
        assert signup_limits.count(conn, signup_limits.IP, KEYS("ip", "203.0.113.9"), signup_limits.HOUR, hour) == 5
        # Windows older than two days go as new ones start.
        signup.client_allowed(conn, settings, KEYS, "203.0.113.9", hour + timedelta(days=3))
        assert signup_limits.count(conn, signup_limits.IP, KEYS("ip", "203.0.113.9"), signup_limits.HOUR, hour) == 0
    first.close()
    second.close()
    assert signup_limits.retry_after(hour + timedelta(minutes=59, seconds=30), signup_limits.HOUR) == 31


def test_purging_removes_stale_pending_subscribers_with_their_tags_and_consents(store: Store) -> None:
    sign_up(store, "old@example.com", NOW - timedelta(days=40), topics=("sleep",))
    sign_up(store, "recent@example.com", NOW - timedelta(days=3))
    sign_up(store, "asked-again@example.com", NOW - timedelta(days=40))
    sign_up(store, "asked-again@example.com", NOW - timedelta(days=2))
    with store.transaction() as conn:
        add(conn, "patient@example.com", Changes(signed_up=NOW - timedelta(days=400)), "cli")
        assert purge_pending(conn, NOW - timedelta(days=30), "cli") == 1
        assert find(conn, "old@example.com") is None
        assert {s for s in ("recent@example.com", "asked-again@example.com", "patient@example.com")
                if find(conn, s)} == {"recent@example.com", "asked-again@example.com", "patient@example.com"}
        assert conn.execute(sa.select(sa.func.count()).select_from(consents)).scalar() == 3
        assert conn.execute(sa.select(sa.func.count()).select_from(subscriber_tags)).scalar() == 0
        assert purge_pending(conn, NOW - timedelta(days=30), "cli") == 0


def test_a_pending_subscriber_is_never_a_recipient(store: Store, workspace: Workspace) -> None:
    with store.transaction() as conn:
        add(conn, "patient@example.com", Changes(tags={"back-pain"}), "cli")
        request_pending(conn, "pending@example.com", "Pat", ["back-pain"], "web:signup", NOW)
    with store.reading() as conn:
        for segment in (everyone(), resolve(conn, '"back-pain" in tags', {}),
                        resolve(conn, 'status == "pending"', {}), resolve(conn, "back-pain", workspace.segments)):
            assert [s.email for s in sample(conn, segment)] == ([] if "pending" in segment.expression else
                                                                ["patient@example.com"])
            assert count(conn, segment) == (0 if "pending" in segment.expression else 1)
        assert [r.email for r in preview_recipients(conn, everyone())][1:] == ["patient@example.com"]
    planned = plan(store, workspace, "back-pain")
    assert planned.recipients == 1
    send = begin_send(store, planned, "back-pain", NOW)
    with store.reading() as conn:
        queued = conn.execute(sa.select(deliveries.c.subscriber_id).where(deliveries.c.send_id == send.id)).scalars()
        assert list(queued) == [get(conn, "patient@example.com").id]


def test_imported_consents_are_kept_once(store: Store) -> None:
    with store.transaction() as conn:
        ana, _ = add(conn, "ana@example.com", Changes(), "cli")
        record = consent.Imported(NOW - timedelta(days=9), "203.0.113.9", NOW - timedelta(days=8), None)
        first = consent.new_import(conn, "import:x.csv", NOW)
        assert consent.record_imports(conn, [(ana.id, record), (ana.id, record)], first) == {ana.id}
        again = consent.new_import(conn, "import:x.csv", NOW)  # the same file imported again
        assert consent.record_imports(conn, [(ana.id, record)], again) == set()
        (kept,) = consent.of_subscriber(conn, ana.id)
    assert (kept.method, kept.source, kept.requested_ip, kept.confirmed_at) == ("import", "import:x.csv",
                                                                                "203.0.113.9", NOW - timedelta(days=8))


def test_client_addresses_are_checked_before_they_are_recorded() -> None:
    assert consent.clean_ip(" 203.0.113.9 ") == "203.0.113.9"
    assert consent.clean_ip("2001:DB8::1") == "2001:db8::1"
    for bad in ("", None, "unknown", "203.0.113.9, 10.0.0.1", "<script>"):
        assert consent.clean_ip(bad) is None
