from __future__ import annotations

import csv
import io
import shutil
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.audience.export import write_csv, write_jsonl
from pipeline.audience.importing.parse import Parsed, Parser
from pipeline.audience.importing.write import ImportOptions, ImportReport, import_csv
from pipeline.audience.subscribers import Changes, add, erase, find, get, iterate
from pipeline.db.engine import Store
from pipeline.db.schema import subscribers, suppressions
from pipeline.errors import ImportFailed
from tests.conftest import FIXTURES

CSV = FIXTURES / "csv"


def copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copy(CSV / name, target)
    return target


def run(store: Store, path: Path, **options: object) -> ImportReport:
    return import_csv(store, path, ImportOptions(**options))  # type: ignore[arg-type]


def counts(report: ImportReport) -> tuple[int, int, int, int]:
    return report.added, report.updated, report.unchanged, report.rejected


def snapshot(store: Store) -> list[dict[str, object]]:
    buffer = io.StringIO()
    with store.reading() as conn:
        write_jsonl(conn, buffer)
    return [line for line in buffer.getvalue().splitlines()]  # type: ignore[misc]


def test_mailchimp_export(store: Store, tmp_path: Path) -> None:
    report = run(store, copy("mailchimp.csv", tmp_path))
    assert counts(report) == (3, 0, 0, 0)
    assert report.rejects_path is None and report.warnings == []
    with store.reading() as conn:
        ana = get(conn, "ana.lopez@example.com")
        ben = get(conn, "ben.okafor@example.com")
        chloe = get(conn, "chloe@example.org")
    assert (ana.first_name, ana.last_name, ana.tags, ana.timezone) == ("Ana", "López", ("back-pain", "vip"),
                                                                       "America/Los_Angeles")
    assert ana.fields == {"birth_year": 1975, "city": "Portland", "member_rating": 4,
                          "latitude": 45.52, "longitude": -122.68, "cc": "US", "region": "OR",
                          "notes": "Prefers mornings"}
    assert ana.consent_at == datetime(2025, 3, 1, 17, 5, 40, tzinfo=UTC)
    assert ana.signed_up == datetime(2025, 3, 1, 17, 2, 11, tzinfo=UTC)
    assert ana.consent_source == "import:mailchimp.csv"
    assert ben.email == "Ben.Okafor@example.com" and ben.tags == ("sleep",) and "birth_year" not in ben.fields
    assert chloe.first_name == "Chloé" and chloe.fields["city"] == "Zürich"
    assert chloe.fields["notes"] == 'Allergic to "latex"' and chloe.tags == ()


def test_mailchimps_consent_columns_become_the_consent_record(store: Store, tmp_path: Path) -> None:
    from pipeline.audience.consent import of_subscriber

    path = copy("mailchimp.csv", tmp_path)
    run(store, path)
    with store.reading() as conn:
        ana, ben, chloe = (get(conn, a) for a in ("ana.lopez@example.com", "ben.okafor@example.com",
                                                  "chloe@example.org"))
        (record,) = of_subscriber(conn, ana.id)
        assert (record.method, record.source) == ("import", "import:mailchimp.csv")
        assert (record.requested_at, record.requested_ip) == (datetime(2025, 3, 1, 17, 2, 11, tzinfo=UTC), None)
        assert (record.confirmed_at, record.confirmed_ip) == (datetime(2025, 3, 1, 17, 5, 40, tzinfo=UTC),
                                                              "203.0.113.9")
        assert [(r.requested_at, r.confirmed_at) for r in of_subscriber(conn, ben.id)] == [
            (datetime(2025, 5, 12, 8, 0, tzinfo=UTC), None)]
        assert of_subscriber(conn, chloe.id) == []  # no consent columns filled in
    # The same file again changes nothing, consent records included.
    assert counts(run(store, path)) == (0, 0, 3, 0)
    with store.reading() as conn:
        assert len(of_subscriber(conn, get(conn, "ana.lopez@example.com").id)) == 1
    # A bad IP is dropped with a warning; the row and its times are kept.
    later = tmp_path / "later.csv"
    later.write_text("Email Address,OPTIN_TIME,OPTIN_IP\nchloe@example.org,2025-06-01 10:00:00,not-an-ip\n",
                     encoding="utf-8")
    report = run(store, later)
    assert counts(report) == (0, 1, 0, 0)
    assert report.warnings == ["later.csv line 2: optin_ip 'not-an-ip' is not an IP address; dropped"]
    with store.reading() as conn:
        (record,) = of_subscriber(conn, get(conn, "chloe@example.org").id)
    assert (record.requested_at, record.requested_ip) == (datetime(2025, 6, 1, 10, 0, tzinfo=UTC), None)


def test_an_import_confirms_or_suppresses_a_pending_signup_and_keeps_pending_rows_pending(
        store: Store, tmp_path: Path) -> None:
    from pipeline.audience.subscribers import request_pending

    with store.transaction() as conn:
        for name in ("ana", "ben", "cleo"):
            request_pending(conn, f"{name}@example.com", None, [], "web:signup", datetime(2026, 1, 1, tzinfo=UTC))
    path = tmp_path / "list.csv"
    path.write_text("email,status\nana@example.com,subscribed\nben@example.com,unsubscribed\n"
                    "cleo@example.com,pending\ndora@example.com,pending\n", encoding="utf-8")
    assert counts(run(store, path)) == (1, 2, 1, 0)
    with store.reading() as conn:
        assert [get(conn, f"{n}@example.com").status for n in ("ana", "ben", "cleo", "dora")] == [
            "subscribed", "unsubscribed", "pending", "pending"]


def test_listmonk_export(store: Store, tmp_path: Path) -> None:
    report = run(store, copy("listmonk.csv", tmp_path))
    assert counts(report) == (2, 0, 0, 0)
    with store.reading() as conn:
        dora = get(conn, "dora@example.com")
        evan = get(conn, "evan@example.com")
    assert (dora.first_name, dora.last_name, dora.status) == ("Dora", "Smith Jones", "subscribed")
    assert dora.fields == {"city": "Seattle", "vip": True, "kids": 2}
    assert dora.signed_up == datetime(2025, 9, 1, 10, tzinfo=UTC)
    assert evan.status == "unsubscribed"


@pytest.mark.parametrize("name", ["plain-semicolon.csv", "plain-tab.tsv"])
def test_plain_files_with_other_separators(store: Store, tmp_path: Path, name: str) -> None:
    report = run(store, copy(name, tmp_path), tags=("spring",))
    with store.reading() as conn:
        people = list(iterate(conn))
    assert report.added == len(people) >= 1
    first = people[0]
    if name == "plain-semicolon.csv":
        assert (first.email, first.tags, first.timezone, first.fields) == (
            "faye@example.com", ("back-pain", "migraine", "spring"), "Asia/Kolkata", {"city": "Pune"})
        assert people[1].fields == {} and people[1].tags == ("spring",)
    else:
        assert (first.email, first.first_name, first.tags) == ("hana@example.com", "Hana", ("sleep", "spring"))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_rejects_go_to_a_file_with_reasons(store: Store, tmp_path: Path) -> None:
    source = write(tmp_path / "list.csv", "email,first_name,city\n"
                                          "ok@example.com,Ok,Oslo\n"
                                          "not-an-address,Bad,\n"
                                          "OK@example.com,Again,\n"
                                          "short@example.com\n"
                                          "long@example.com,A,B,C\n"
                                          "pad@example.com,Pad,Lima,,\n"
                                          ",Nobody,\n")
    report = run(store, source)
    assert counts(report) == (2, 0, 0, 5)
    assert report.rejects_path == tmp_path / "list.csv.rejects.csv"
    rows = list(csv.reader(report.rejects_path.open(encoding="utf-8")))
    assert rows == [
        ["email", "first_name", "city", "reason"],
        ["not-an-address", "Bad", "", "line 3: invalid email address 'not-an-address': An email address must "
                                      "have an @-sign."],
        ["OK@example.com", "Again", "", "line 4: duplicate of an earlier row for OK@example.com"],
        ["short@example.com", "line 5: has 1 fields, the header has 3"],
        ["long@example.com", "A", "B", "C", "line 6: has 4 fields, the header has 3"],
        ["", "Nobody", "", "line 8: no email address"],
    ]
    again = run(store, write(source, "email\nok@example.com\n"))
    assert counts(again) == (0, 0, 1, 0)
    assert not (tmp_path / "list.csv.rejects.csv").exists()  # a stale rejects file would mislead


def test_update_no_update_and_extra_tags(store: Store, tmp_path: Path) -> None:
    source = write(tmp_path / "a.csv", "email,first_name,city\nana@example.com,Ana,Oslo\n")
    run(store, source)
    write(source, "email,first_name,city,zip\nana@example.com,Anna,Bergen,5003\n")
    assert counts(run(store, source, update=False, tags=("x",))) == (0, 0, 1, 0)
    assert counts(run(store, source, tags=("x",))) == (0, 1, 0, 0)
    with store.reading() as conn:
        ana = get(conn, "ana@example.com")
    assert (ana.first_name, ana.fields, ana.tags) == ("Anna", {"city": "Bergen", "zip": 5003}, ("x",))
    assert counts(run(store, source, tags=("x",))) == (0, 0, 1, 0)


def test_dry_run_changes_nothing_but_reports(store: Store, tmp_path: Path) -> None:
    source = write(tmp_path / "a.csv", "email\nana@example.com\nbad\n")
    report = run(store, source, dry_run=True)
    assert counts(report) == (1, 0, 0, 1) and report.dry_run
    assert report.rejects_path is not None and report.rejects_path.exists()
    assert snapshot(store) == []


def test_suppression_is_permanent_unless_resubscribe(store: Store, tmp_path: Path) -> None:
    source = write(tmp_path / "a.csv", "email,first_name\nana@example.com,Ana\nben@example.com,Ben\n")
    run(store, source)
    suppression = write(tmp_path / "suppress.csv", "Email Address\nana@example.com\nnew@example.com\n")
    assert counts(run(store, suppression, status="unsubscribed")) == (1, 1, 0, 0)
    with store.reading() as conn:
        assert get(conn, "ana@example.com").status == "unsubscribed"
        assert get(conn, "new@example.com").status == "unsubscribed"

    report = run(store, source)
    assert counts(report) == (0, 0, 1, 1)
    assert report.rejects_path is not None
    assert "ana@example.com is unsubscribed; use --resubscribe" in report.rejects_path.read_text()
    assert counts(run(store, source, resubscribe=True)) == (0, 1, 1, 0)
    with store.reading() as conn:
        assert get(conn, "ana@example.com").status == "subscribed"


def rejected(report: ImportReport) -> list[str]:
    """The lines of the import's rejects file, which must be there."""
    assert report.rejects_path is not None
    return report.rejects_path.read_text(encoding="utf-8").splitlines()


def erased(store: Store, address: str) -> None:
    """A subscriber who was added, then erased: nothing left of them but the suppression."""
    with store.transaction() as conn:
        add(conn, address, Changes(first_name="Gone"), "test")
        erase(conn, address, "test")


def test_erased_addresses_stay_suppressed(store: Store, tmp_path: Path) -> None:
    erased(store, "gone@example.com")
    source = write(tmp_path / "a.csv", "email\nGONE@example.com\n")
    report = run(store, source)
    assert counts(report) == (0, 0, 0, 1)
    assert "was erased and is suppressed" in report.rejects_path.read_text()  # type: ignore[union-attr]
    assert counts(run(store, source, status="unsubscribed")) == (0, 0, 1, 0)
    with store.reading() as conn:
        assert find(conn, "gone@example.com") is None
    assert counts(run(store, source, resubscribe=True)) == (1, 0, 0, 0)
    with store.reading() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(suppressions)).scalar() == 0


def test_header_breaking_characters_are_cleaned(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_bytes(b'email,first_name,last_name\neve@example.com,"Eve\r\nBcc: x@example.com","A\x00B"\n')
    assert counts(run(store, source)) == (1, 0, 0, 0)
    with store.reading() as conn:
        eve = get(conn, "eve@example.com")
    assert (eve.first_name, eve.last_name) == ("Eve Bcc: x@example.com", "A B")


def test_a_huge_cell_rejects_its_row_only(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_text("email,notes\nbig@example.com," + "x" * 10_000_000 + "\nsmall@example.com,hi\n")
    report = run(store, source)
    assert counts(report) == (1, 0, 0, 1)
    reason = next(csv.reader([report.rejects_path.read_text().splitlines()[-1]]))[-1]  # type: ignore[union-attr]
    assert reason == "line 2: cell 'notes' is 10,000,000 characters long (the limit is 65,536)"


def test_cells_over_the_limit_together_but_not_one_by_one_are_kept(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_text("email,notes,more\nbig@example.com," + "x" * 40_000 + "," + "y" * 40_000 + "\n")
    assert counts(run(store, source)) == (1, 0, 0, 0)
    with store.reading() as conn:
        assert get(conn, "big@example.com").fields == {"notes": "x" * 40_000, "more": "y" * 40_000}


def test_a_name_longer_than_its_column_rejects_its_row_on_every_database(store: Store, tmp_path: Path) -> None:
    source = write(tmp_path / "a.csv", "email,first_name,last_name,consent_source\nlong@example.com," + "A" * 201
                   + ",Lee,\nok@example.com," + "B" * 200 + ",Lee,\nsur@example.com,Sam," + "C" * 250 + ",\n"
                   "src@example.com,Sam,Lee," + "D" * 201 + "\n")
    report = run(store, source)
    assert counts(report) == (1, 0, 0, 3)
    reasons = [row[-1] for row in csv.reader(report.rejects_path.read_text().splitlines()[1:])]  # type: ignore[union-attr]
    assert reasons == ["line 2: first_name is 201 characters long (the limit is 200)",
                       "line 4: last_name is 250 characters long (the limit is 200)",
                       "line 5: consent_source is 201 characters long (the limit is 200)"]
    with store.reading() as conn:
        assert get(conn, "ok@example.com").first_name == "B" * 200


def test_a_time_that_is_not_one_is_dropped_with_a_warning(store: Store, tmp_path: Path) -> None:
    source = write(tmp_path / "a.csv", "email,optin_time,confirm_time,signed_up\n"
                   "ana@example.com,soon,2025-03-14 09:30:00,yesterday\n")
    report = run(store, source)
    assert counts(report) == (1, 0, 0, 0)
    assert report.warnings == ["a.csv line 2: optin_time 'soon' is not a date and time; dropped",
                               "a.csv line 2: signed_up 'yesterday' is not a date and time; dropped"]
    with store.reading() as conn:
        ana = get(conn, "ana@example.com")
    assert ana.consent_at == datetime(2025, 3, 14, 9, 30, tzinfo=UTC)  # the confirmation time, which is one


def test_unknown_timezone_is_dropped_with_a_warning(store: Store, tmp_path: Path) -> None:
    report = run(store, write(tmp_path / "a.csv", "email,timezone\nana@example.com,Mars/Olympus\n"))
    assert counts(report) == (1, 0, 0, 0)
    assert report.warnings == ["a.csv line 2: unknown timezone 'Mars/Olympus' dropped; the subscriber was kept"]
    with store.reading() as conn:
        assert get(conn, "ana@example.com").timezone is None


@pytest.mark.parametrize(("content", "message"), [
    (b"", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is a binary file, not CSV text"),
    (b"name,city\nAna,Oslo\n", "no email column (the header has 'name', 'city'); name one 'email' or "
                               "'Email Address'"),
    (b"email,Email Address\na@x.example,b@x.example\n", "columns 1 and 2 both mean 'email'"),
    (b"email,city\nana@example.com,Z\xfcrich\n", "line 2 is not UTF-8 text; save the file as UTF-8 "
                                                "(nothing was imported)"),
])
def test_bad_files_are_refused_whole(store: Store, tmp_path: Path, content: bytes, message: str) -> None:
    source = tmp_path / "a.csv"
    source.write_bytes(content)
    with pytest.raises(ImportFailed) as caught:
        run(store, source)
    assert str(caught.value) == f"{source}: {message}"
    assert snapshot(store) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "db"]


def test_a_file_that_cannot_be_imported_is_refused_without_waiting_for_the_database(tmp_path: Path) -> None:
    """Another import holding SQLite's write lock does not hold up the refusal of a file with no
    email column (the lock would be waited for up to 30 s)."""
    store = Store(f"sqlite:///{tmp_path / 'list.db'}")
    source = write(tmp_path / "a.csv", "name,city\nAna,Oslo\n")
    other = sqlite3.connect(tmp_path / "list.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(ImportFailed, match="no email column"):
            run(store, source)
        assert time.monotonic() - started < 5
    finally:
        other.execute("ROLLBACK")
        other.close()
        store.close()


def test_rows_the_list_turns_away_are_in_the_rejects_file_in_the_files_order(store: Store, tmp_path: Path) -> None:
    run(store, write(tmp_path / "left.csv", "email\nleft@example.com\n"), status="unsubscribed")
    erased(store, "gone@example.com")
    source = write(tmp_path / "a.csv", "email\nleft@example.com\ngone@example.com\nnew@example.com\n")
    report = run(store, source)
    assert counts(report) == (1, 0, 0, 2)
    assert rejected(report) == [
        "email,reason",
        "left@example.com,line 2: left@example.com is unsubscribed; use --resubscribe to subscribe it again",
        "gone@example.com,line 3: gone@example.com was erased and is suppressed; use --resubscribe to add it again"]


def test_a_failure_late_in_a_big_file_leaves_the_list_as_it_was(store: Store, tmp_path: Path) -> None:
    with store.transaction() as conn:
        add(conn, "keep@example.com", Changes(first_name="Keep"), "test")
    before = snapshot(store)
    lines = [f"user{i}@example.com,Name{i}" for i in range(5000)]
    source = tmp_path / "big.csv"
    source.write_bytes(("email,first_name\n" + "\n".join(lines) + "\n").encode() + b"late@example.com,\xff\n")
    with pytest.raises(ImportFailed, match=r"line 5002 is not UTF-8"):
        run(store, source)
    assert snapshot(store) == before


def test_ctrl_c_rolls_back_and_leaves_no_files(store: Store, tmp_path: Path) -> None:
    source = write(tmp_path / "big.csv", "email\n" + "\n".join(f"u{i}@example.com" for i in range(5000)) +
                   "\nbad\n")

    def interrupt(_position: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_csv(store, source, ImportOptions(), interrupt)
    assert snapshot(store) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv", "db"]


def test_export_then_import_changes_nothing(store: Store, tmp_path: Path) -> None:
    for name in ("mailchimp.csv", "listmonk.csv", "plain-semicolon.csv"):
        run(store, copy(name, tmp_path))
    with store.transaction() as conn:
        add(conn, "odd@example.com", Changes(fields={"code": "1975", "flag": False, "nested": {"a": [1, 2]}}), "t")
    before = snapshot(store)
    exported = tmp_path / "export.csv"
    with store.reading() as conn, exported.open("w", encoding="utf-8", newline="") as out:
        assert write_csv(conn, out) == 8
    report = run(store, exported)
    assert counts(report) == (0, 0, 8, 0)
    assert snapshot(store) == before


def test_statuses_are_never_resubscribed_by_a_status_column(store: Store, tmp_path: Path) -> None:
    with store.transaction() as conn:
        add(conn, "ana@example.com", Changes(), "t")
        conn.execute(subscribers.update().values(status="bounced"))
    report = run(store, write(tmp_path / "a.csv", "email,status\nana@example.com,subscribed\nx@example.com,weird\n"))
    assert counts(report) == (0, 0, 0, 2)
    with store.reading() as conn:
        assert get(conn, "ana@example.com").status == "bounced"


@pytest.fixture
def big_file_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take the large-file paths (a parsing process, the index rebuild) for small test files."""
    import pipeline.audience.importing.helper
    import pipeline.audience.importing.write

    monkeypatch.setattr(pipeline.audience.importing.helper, "PARALLEL_FROM_BYTES", 0)
    monkeypatch.setattr(pipeline.audience.importing.write, "BULK_FROM_BYTES", 0)


def test_large_file_path_imports_the_same(store: Store, tmp_path: Path, big_file_paths: None) -> None:
    lines = [f'u{i}@example.com,Name{i},"""t{i % 3}"""' for i in range(4500)]
    source = write(tmp_path / "big.csv", "email,first_name,tags\n" + "\n".join(lines) + "\nbad,x,\n")
    report = run(store, source)
    assert counts(report) == (4500, 0, 0, 1)
    with store.reading() as conn:
        assert get(conn, "u4499@example.com").tags == ("t2",)
        assert get(conn, "u1@example.com").first_name == "Name1"
        assert conn.execute(sa.select(sa.func.count()).select_from(subscribers)).scalar() == 4500
        assert "subscribers_signed_up_status" in {i["name"] for i in sa.inspect(conn).get_indexes("subscribers")}
    assert counts(run(store, source)) == (0, 0, 4500, 1)


def test_large_file_path_into_an_empty_list_keeps_the_cells_an_erasure_turns_away(
        store: Store, tmp_path: Path, big_file_paths: None) -> None:
    """With nothing in the list, only an erased address can turn a row away in the writer; the
    records must still carry their cells then, for the rejects file."""
    erased(store, "gone@example.com")
    source = write(tmp_path / "big.csv", "email;first_name\nana@example.com;Ana\nGONE@example.com;Gone again\n")
    report = run(store, source)
    assert counts(report) == (1, 0, 0, 1)
    assert rejected(report) == [
        "email;first_name;reason",
        'GONE@example.com;Gone again;"line 3: GONE@example.com was erased and is suppressed; use --resubscribe '
        'to add it again"']


def test_the_parser_leaves_out_the_cells_when_told_no_row_will_be_turned_away(tmp_path: Path) -> None:
    source = write(tmp_path / "a.csv", "email,first_name\nana@example.com,Ana\n")
    parser = Parser(source, None, frozenset())
    parser.keep_cells = False
    batch = next(item for item in parser.items() if isinstance(item, Parsed))
    assert [(record.row, record.email, record.first_name) for record in batch.records] == [
        (None, "ana@example.com", "Ana")]


def test_large_file_path_reports_a_bad_line_and_keeps_the_list(store: Store, tmp_path: Path,
                                                               big_file_paths: None) -> None:
    source = tmp_path / "big.csv"
    source.write_bytes(("email\n" + "\n".join(f"u{i}@example.com" for i in range(4100)) + "\n").encode()
                       + b"x\xff@example.com\n")
    with pytest.raises(ImportFailed) as caught:
        run(store, source)
    assert str(caught.value) == f"{source}: line 4102 is not UTF-8 text; save the file as UTF-8 (nothing was imported)"
    assert snapshot(store) == []
    with store.reading() as conn:
        assert "subscribers_signed_up_status" in {i["name"] for i in sa.inspect(conn).get_indexes("subscribers")}


def test_large_file_path_ctrl_c(store: Store, tmp_path: Path, big_file_paths: None) -> None:
    test_ctrl_c_rolls_back_and_leaves_no_files(store, tmp_path)
