"""Bounce and complaint reports into the list, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.audience.subscribers import Changes, add, erase, find
from pipeline.clock import utcnow
from pipeline.db import migrations as store_module
from pipeline.db.engine import Store
from pipeline.db.migrations import SCHEMA_VERSION, current_version
from pipeline.db.schema import bounces, sends, subscriber_events
from pipeline.delivery.bounces.intake import (
    ImportCounts,
    bounce_counts,
    import_bounces,
    record_reports,
)
from pipeline.delivery.bounces.reports import (
    classify,
    read_message,
    read_reports,
    status_code,
)
from pipeline.delivery.message_ids import make_message_id
from pipeline.errors import BounceError, ConfigError
from pipeline.settings.workspace import load_workspace
from tests.conftest import FIXTURES, edit

SECRET = "a-test-secret: 4f9Kq2ZxT7mB0wLs8Rj3"
DOMAIN = "willowcreek-acupuncture.example"
MAILDIR = FIXTURES / "bounces" / "maildir"
PROVIDER_CSV = FIXTURES / "bounces" / "provider.csv"
# In this order, so their ids are 1, 2, 3...: the fixtures' Message-IDs name ana (1), ben (2),
# dana (4) and fay (6) in send 1.
PEOPLE = ["ana@example.com", "ben@example.com", "cleo@example.com", "dana@example.com", "erin@example.com",
          "fay@example.com", "gus@example.com", "hal@example.com"]


def populate(store: Store, sends_: int = 1) -> None:
    with store.transaction() as conn:
        for address in PEOPLE:
            add(conn, address, Changes(), "cli")
        now = utcnow()
        for number in range(1, sends_ + 1):
            conn.execute(sends.insert().values(id=number, campaign="back-pain", occurrence=str(number), state="sent",
                                               created_at=now, updated_at=now))


def statuses(store: Store) -> dict[str, str]:
    with store.reading() as conn:
        return {address: found.status for address in PEOPLE if (found := find(conn, address)) is not None}


def table(store: Store) -> list[tuple[object, ...]]:
    columns = [bounces.c.subscriber_id, bounces.c.send_id, bounces.c.kind, bounces.c.status, bounces.c.diagnostic,
               bounces.c.source]
    with store.reading() as conn:
        return [tuple(row) for row in conn.execute(sa.select(*columns).order_by(bounces.c.id))]


def events(store: Store) -> list[tuple[object, ...]]:
    with store.reading() as conn:
        query = sa.select(subscriber_events.c.subscriber_id, subscriber_events.c.kind, subscriber_events.c.source,
                          subscriber_events.c.detail).where(subscriber_events.c.source != "cli")
        return [tuple(row) for row in conn.execute(query.order_by(subscriber_events.c.id))]


def dsn(own_id: str, recipient: str, action: str, status: str, original: str | None = None) -> bytes:
    """A delivery status notification shaped like RFC 3464's examples."""
    headers = (f"--B\nContent-Type: text/rfc822-headers\n\nTo: {recipient}\nMessage-ID: {original}\n\n"
               if original else "")
    return (f"From: MAILER-DAEMON@mx.example.org\nMessage-Id: <{own_id}@mx.example.org>\n"
            f"Date: Wed, 4 Mar 2026 10:00:00 +0000\nMIME-Version: 1.0\n"
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
            f"--B\nContent-Type: text/plain\n\nDelivery report.\n\n"
            f"--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
            f"Final-Recipient: rfc822; {recipient}\nAction: {action}\nStatus: {status}\n"
            f"Diagnostic-Code: smtp; {status} mailbox full\n\n{headers}--B--\n").encode()


def our_id(subscriber_id: int, send_id: int = 1) -> str:
    return make_message_id("back-pain", send_id, subscriber_id, DOMAIN, SECRET)


def test_a_maildir_of_reports(store: Store) -> None:
    populate(store)
    counts = import_bounces(store, MAILDIR, SECRET, soft_limit=3)
    assert counts == ImportCounts(hard=2, soft=1, complaints=1, suppressed=3, unmatched=0, not_reports=1,
                                  already_imported=0)
    assert statuses(store) == {"ana@example.com": "bounced", "ben@example.com": "subscribed",
                               "cleo@example.com": "bounced", "dana@example.com": "complained",
                               "erin@example.com": "subscribed", "fay@example.com": "subscribed",
                               "gus@example.com": "subscribed", "hal@example.com": "subscribed"}
    # Sorted by file: cur/ before new/; tmp/ (a report still being written) is not read.
    assert table(store) == [
        (3, None, "hard", "5.0.0", "550 user unknown", "cur/1772460001.M3P201.mx1"),
        (4, 1, "complaint", None, "Feedback-Type: abuse", "cur/1772470001.M4P201.mx1"),
        # Matched by the Message-ID although the server names a forwarding address; the address it
        # quotes is not kept.
        (1, 1, "hard", "5.1.1", "550 5.1.1 <[address]>: Recipient address rejected: User unknown",
         "new/1772445601.M1P201.mx1"),
        (2, 1, "soft", "4.2.2", "452 4.2.2 Mailbox full", "new/1772456401.M2P201.mx1"),
    ]
    assert events(store) == [
        (3, "bounced", "bounces:cur/1772460001.M3P201.mx1",
         '{"kind": "hard", "status": "5.0.0", "send": null, "campaign": null}'),
        (4, "complained", "bounces:cur/1772470001.M4P201.mx1",
         '{"kind": "complaint", "status": null, "send": 1, "campaign": "back-pain"}'),
        (1, "bounced", "bounces:new/1772445601.M1P201.mx1",
         '{"kind": "hard", "status": "5.1.1", "send": 1, "campaign": "back-pain"}'),
    ]


def test_importing_the_same_reports_again_changes_nothing(store: Store, tmp_path: Path) -> None:
    populate(store)
    import_bounces(store, MAILDIR, SECRET, 3)
    before = (table(store), events(store), statuses(store))
    again = import_bounces(store, MAILDIR, SECRET, 3)
    assert again.summary() == ("hard 0, soft 0, complaints 0, suppressed 0, unmatched 0, not a report 1, "
                               "already imported 4")
    # The same report delivered a second time, with other transit headers, is recognised too.
    copy = tmp_path / "copy.eml"
    original = (MAILDIR / "cur" / "1772460001.M3P201.mx1").read_bytes()
    copy.write_bytes(b"Delivered-To: other@willowcreek-acupuncture.example\n" + original)
    assert import_bounces(store, copy, SECRET, 3).already_imported == 1
    assert (table(store), events(store), statuses(store)) == before


def test_one_eml_file_and_a_folder_of_them(store: Store, tmp_path: Path) -> None:
    populate(store)
    folder = tmp_path / "reports"
    folder.mkdir()
    for path in sorted(MAILDIR.glob("*/*")):
        shutil.copy(path, folder / f"{path.name}.eml")
    (folder / "notes.txt").write_text("not read: only .eml and .csv files are")
    single = import_bounces(store, folder / "1772445601.M1P201.mx1.eml", SECRET, 3)
    assert single.summary() == ("hard 1, soft 0, complaints 0, suppressed 1, unmatched 0, not a report 0, "
                                "already imported 0")
    # A folder is not a Maildir: tmp's half-written report is read too, and is no report.
    rest = import_bounces(store, folder, SECRET, 3)
    assert rest.summary() == ("hard 1, soft 1, complaints 1, suppressed 2, unmatched 0, not a report 2, "
                              "already imported 1")
    assert table(store)[0][-1] == "1772445601.M1P201.mx1.eml"


def test_soft_bounces_suppress_once_enough_sends_bounced(store: Store) -> None:
    populate(store, sends_=3)
    ben = "ben@example.com"
    first_send = [
        dsn("w1", ben, "delayed", "4.2.2", our_id(2, 1)),  # a warning after 4 hours
        dsn("w2", ben, "delayed", "4.2.2", our_id(2, 1)),  # and after a day
        dsn("w3", ben, "failed", "4.2.2", our_id(2, 1)),  # then the server gives up: still transient
    ]
    counts = record_reports(store, [read_message(data, "send-1") for data in first_send], SECRET, soft_limit=3)
    # Three reports, one soft-bounced recipient of one send: counted once, as `campaign status` counts it.
    assert (counts.soft, counts.suppressed) == (1, 0)
    second = record_reports(store, [read_message(dsn("w4", ben, "delayed", "4.2.2", our_id(2, 2)), "send-2")],
                            SECRET, soft_limit=3)
    assert (second.soft, second.suppressed, statuses(store)[ben]) == (1, 0, "subscribed")
    third = record_reports(store, [read_message(dsn("w5", ben, "failed", "4.4.7", our_id(2, 3)), "send-3")],
                           SECRET, soft_limit=3)
    assert (third.soft, third.suppressed, statuses(store)[ben]) == (1, 1, "bounced")
    assert events(store) == [(2, "bounced", "bounces:send-3", json.dumps(
        {"kind": "soft", "status": "4.4.7", "send": 3, "campaign": "back-pain", "soft_bounced_sends": 3}))]
    with store.reading() as conn:
        assert bounce_counts(conn) == {1: {"hard": 0, "soft": 1, "complaint": 0},
                                       2: {"hard": 0, "soft": 1, "complaint": 0},
                                       3: {"hard": 0, "soft": 1, "complaint": 0}}


def test_soft_bounces_without_a_send_count_one_by_one(store: Store) -> None:
    populate(store)
    reports = [read_message(dsn(f"n{i}", "cleo@example.com", "delayed", "4.2.2"), f"r{i}") for i in range(2)]
    assert record_reports(store, reports, SECRET, soft_limit=2).suppressed == 1
    assert statuses(store)["cleo@example.com"] == "bounced"


def test_a_provider_csv(store: Store) -> None:
    populate(store)
    counts = import_bounces(store, PROVIDER_CSV, SECRET, 3)
    assert counts.summary() == ("hard 2, soft 1, complaints 1, suppressed 2, unmatched 1, not a report 1, "
                                "already imported 0")
    assert {k: v for k, v in statuses(store).items() if v != "subscribed"} == {
        "erin@example.com": "bounced", "gus@example.com": "complained"}
    assert table(store) == [
        (5, None, "hard", "5.1.1", "smtp;550 5.1.1 The email account <[address]> that you tried to reach does not "
                                   "exist.", "provider.csv:2"),
        (6, 1, "soft", "4.7.0", "smtp;421 4.7.0 Try again later", "provider.csv:3"),
        (7, None, "complaint", None, None, "provider.csv:4"),
        (None, None, "hard", "5.1.1", "smtp;550 5.1.1 no such user", "provider.csv:6"),
    ]
    assert import_bounces(store, PROVIDER_CSV, SECRET, 3).summary() == (
        "hard 0, soft 0, complaints 0, suppressed 0, unmatched 0, not a report 1, already imported 4")


@pytest.mark.parametrize(("text", "kinds", "timed"), [
    # Mailgun-style events: event, severity, recipient, timestamp in Unix seconds.
    ("event,severity,recipient,timestamp,delivery-status.code\n"
     "failed,permanent,ana@example.com,1772470800.5,550\n"
     "failed,temporary,ben@example.com,1772470801,421\n"
     "complained,,cleo@example.com,1772470802,\n"
     "delivered,,dana@example.com,1772470803,250\n", ["hard", "soft", "complaint", None], True),
    # SendGrid's bounce list: no type column; the status code says which kind.
    ("created,email,reason,status\n"
     "2026-03-02 10:00:00,ana@example.com,550 5.1.1 unknown user,5.1.1\n"
     "2026-03-02 10:00:01,ben@example.com,452 4.2.2 mailbox full,4.2.2\n", ["hard", "soft"], True),
    # Amazon SES, semicolon separated, with a BOM.
    ("\ufeffnotificationType;bounceType;email;timestamp\n"
     "Bounce;Permanent;ana@example.com;2026-03-02T10:00:00.000Z\n"
     "Bounce;Transient;ben@example.com;2026-03-02T10:00:01.000Z\n"
     "Complaint;;cleo@example.com;2026-03-02T10:00:02.000Z\n", ["hard", "soft", "complaint"], True),
    # A plain suppression list: bounced addresses with a class, tab separated.
    ("Email Address\tBounce Type\nana@example.com\thard\nben@example.com\tsoft\n", ["hard", "soft"], False),
])
def test_other_providers_columns(tmp_path: Path, text: str, kinds: list[str | None], timed: bool) -> None:
    path = tmp_path / "export.csv"
    path.write_text(text, encoding="utf-8")
    reports = read_reports(path)
    assert [r.events[0].kind if r.events else None for r in reports] == kinds
    assert [r.source for r in reports] == [f"export.csv:{n}" for n in range(2, len(kinds) + 2)]
    assert reports[0].events[0].recipient == "ana@example.com"
    when = reports[0].events[0].received_at
    assert (when.isoformat()[:16] if when else None) == ("2026-03-02T17:00" if "1772470800" in text else
                                                         "2026-03-02T10:00" if timed else None)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "is empty"),
    (b"id,name\n1,Ana\n", "no email or recipient column (found: id, name)"),
    (b"email,type\nana@example.com,bounce\nb\xe9n@example.com,bounce\n", "line 3: not UTF-8 text"),
])
def test_csv_files_that_cannot_be_read(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(BounceError) as caught:
        read_reports(path)
    assert str(caught.value) == f"{path}: {message}"


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BounceError) as caught:
        read_reports(tmp_path / "nope")
    assert str(caught.value) == f"{tmp_path / 'nope'}: no such file or folder"


def test_dry_run_counts_and_saves_nothing(store: Store) -> None:
    populate(store)
    counts = import_bounces(store, MAILDIR, SECRET, 3, dry_run=True)
    assert (counts.hard, counts.suppressed) == (2, 3)
    assert table(store) == [] and events(store) == []
    assert set(statuses(store).values()) == {"subscribed"}


def test_unmatched_and_forged_message_ids(store: Store) -> None:
    populate(store)
    forged = our_id(2).replace("0c8a4314e48c", "000000000000")
    reports = [read_message(dsn("f1", "zed@example.com", "failed", "5.1.1", forged), "forged"),
               read_message(dsn("f2", "ben@example.com", "failed", "5.1.1", "<abc@elsewhere.example>"), "theirs")]
    counts = record_reports(store, reports, SECRET, 3)
    assert (counts.hard, counts.unmatched, counts.suppressed) == (2, 1, 1)
    # A forged Message-ID names nobody and no send; a stranger's falls back to the address.
    assert [row[:3] for row in table(store)] == [(None, None, "hard"), (2, None, "hard")]


def test_a_multi_recipient_report_and_one_without_bounces() -> None:
    """RFC 3464's second example: one report, three recipients; and a report of delivery."""
    data = (FIXTURES / "bounces" / "rfc3464-multi-recipient.eml").read_bytes()
    report = read_message(data, "a2")
    assert report.format == "dsn"
    assert [(e.kind, e.recipient, e.status, e.diagnostic) for e in report.events] == [
        ("hard", "arathib@vnet.ibm.com", "5.0.0", "550 'arathib@vnet.IBM.COM' is not a registered gateway user"),
        ("soft", "johnh@hpnjld.njd.hp.com", "4.0.0", None), ("hard", "wsnell@sdcc13.ucsd.edu", "5.0.0", "550 user unknown")]
    # The original message part holds no Message-ID: these are matched by address.
    assert {e.message_id for e in report.events} == {None}
    assert len({e.key for e in report.events}) == 3
    assert read_message(data, "again").events == report.events  # the same keys every time
    delivered = read_message(dsn("ok", "ana@example.com", "delivered", "2.0.0"), "ok")
    assert (delivered.format, delivered.events) == ("dsn", ())


@pytest.mark.parametrize(("action", "status", "kind"), [
    ("failed", "5.1.1", "hard"), ("failed", None, "hard"), ("Failed", "5.0.0", "hard"),
    ("delayed", "4.2.2", "soft"), ("delayed", None, "soft"),
    ("failed", "4.0.0", "soft"),  # RFC 3464's first example: given up after 5 days of timeouts
    ("delivered", "2.0.0", None), ("relayed", None, None), ("expanded", "2.0.0", None), (None, None, None),
])
def test_classification(action: str | None, status: str | None, kind: str | None) -> None:
    assert classify(action, status) == kind


def test_status_codes() -> None:
    assert status_code("5.0.0 (permanent failure)") == "5.0.0"
    assert status_code("smtp; 550 5.1.1 user unknown") == "5.1.1"
    assert status_code("550 user unknown") is None and status_code(None) is None


def test_an_erased_subscribers_bounces_keep_nothing_of_them(store: Store) -> None:
    populate(store)
    import_bounces(store, MAILDIR, SECRET, 3)
    with store.transaction() as conn:
        erase(conn, "ana@example.com", "cli")
    rows = [row for row in table(store) if row[-1] == "new/1772445601.M1P201.mx1"]
    assert rows == [(None, 1, "hard", "5.1.1", "550 5.1.1 <[address]>: Recipient address rejected: User unknown",
                     "new/1772445601.M1P201.mx1")]
    with store.reading() as conn:
        assert bounce_counts(conn) == {1: {"hard": 1, "soft": 1, "complaint": 1}}


def test_bounce_counts_count_recipients_per_send(store: Store) -> None:
    populate(store, sends_=2)
    reports = [read_message(dsn(f"d{i}", "ben@example.com", "delayed", "4.2.2", our_id(2, 1)), "x") for i in range(3)]
    reports += [read_message(dsn("h", "ana@example.com", "failed", "5.1.1", our_id(1, 2)), "y"),
                read_message(dsn("s", "cleo@example.com", "failed", "4.2.2", our_id(3, 2)), "z")]
    record_reports(store, reports, SECRET, 3)
    with store.reading() as conn:
        assert bounce_counts(conn) == {1: {"hard": 0, "soft": 1, "complaint": 0},
                                       2: {"hard": 1, "soft": 1, "complaint": 0}}


def test_a_version_2_database_gains_the_bounces_table(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:2])
        patch.setattr(store_module, "SCHEMA_VERSION", 2)
        old = Store(db_url)
        with old.transaction() as conn:
            add(conn, "ana@example.com", Changes(), "cli")
            assert "bounces" not in sa.inspect(conn).get_table_names()
        old.close()
    upgraded = Store(db_url)
    with upgraded.reading() as conn:
        assert current_version(conn) == SCHEMA_VERSION
        assert "bounces" in sa.inspect(conn).get_table_names()
        assert find(conn, "ana@example.com") is not None
    upgraded.close()


def test_soft_limit_comes_from_campaign_toml(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_workspace(workspace_dir).bounces.soft_limit == 3
    monkeypatch.setenv("CAMPAIGN_BOUNCES_SOFT_LIMIT", "5")
    assert load_workspace(workspace_dir).bounces.soft_limit == 5
    monkeypatch.delenv("CAMPAIGN_BOUNCES_SOFT_LIMIT")
    for bad in ("0", "2.5", '"many"', "true"):
        edit(workspace_dir / "campaign.toml", "soft_limit = 3", f"soft_limit = {bad}")
        with pytest.raises(ConfigError, match=r"campaign.toml: \[bounces\] soft_limit: .* is not a whole number of "
                                              r"at least 1$"):
            load_workspace(workspace_dir)
        edit(workspace_dir / "campaign.toml", f"soft_limit = {bad}", "soft_limit = 3")
