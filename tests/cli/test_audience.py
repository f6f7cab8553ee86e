from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Campaign

PEOPLE = ("Email Address,First Name,Last Name,City,TAGS\n"
          'ana@example.com,Ana,Lopez,San Francisco,"""back-pain"""\n'
          'ben@example.com,Ben,,Portland,"""sleep"""\n'
          "bad-address,X,,,\n")


def load(audience: Campaign, tmp_path: Path) -> Path:
    source = tmp_path / "patients.csv"
    source.write_text(PEOPLE, encoding="utf-8")
    result = audience("subscribers", "import", str(source))
    assert result.exit_code == 0
    assert result.stdout == "added 2, updated 0, unchanged 0, rejected 1\n"
    assert result.stderr == f"Rejected rows and their reasons: {tmp_path / 'patients.csv.rejects.csv'}\n"
    return source


def test_import_list_count_and_segments(audience: Campaign, tmp_path: Path) -> None:
    load(audience, tmp_path)
    assert audience("subscribers", "list").stdout == ("ana@example.com\tAna\tLopez\tsubscribed\tback-pain\n"
                                                      "ben@example.com\tBen\t\tsubscribed\tsleep\n")
    assert audience("subscribers", "count").stdout == ("subscribed\t2\nunsubscribed\t0\nbounced\t0\n"
                                                       "complained\t0\npending\t0\nerased\t0\n")
    assert audience("segments", "count", '"back-pain" in tags and city == "San Francisco"').stdout == "1\n"
    assert audience("segments", "list").stdout == ('back-pain\t1\t"back-pain" in tags\n'
                                                   "new-patients\t2\tsigned_up >= days_ago(90)\n")
    show = audience("segments", "show", "back-pain")
    assert show.stdout == ('expression: "back-pain" in tags\nrecipients: 1\n'
                           "ana@example.com\tAna\tLopez\tsubscribed\tback-pain\n")
    assert audience("subscribers", "list", "--segment", "back-pain").stdout.count("\n") == 1
    assert audience("subscribers", "count", "--segment", 'city == "Portland"').stdout == "1\n"


def test_dry_run_says_so(audience: Campaign, tmp_path: Path) -> None:
    source = tmp_path / "p.csv"
    source.write_text("email\nana@example.com\n")
    result = audience("subscribers", "import", str(source), "--dry-run")
    assert (result.stdout, result.stderr) == ("added 1, updated 0, unchanged 0, rejected 0\n",
                                              "Dry run: nothing was saved.\n")
    assert audience("subscribers", "list").stdout == ""


def test_add_unsubscribe_tag_untag_delete(audience: Campaign) -> None:
    added = audience("subscribers", "add", "cleo@example.com", "--first-name", "Cleo", "--tag", "vip",
                     "--field", "city=Oslo", "--field", "birth_year=1980", "--timezone", "europe/oslo")
    assert (added.exit_code, added.stdout, added.stderr) == (0, "cleo@example.com\tCleo\t\tsubscribed\tvip\n",
                                                             "Added.\n")
    assert audience("segments", "count", "birth_year == 1980 and timezone == \"Europe/Oslo\"").stdout == "1\n"
    assert audience("subscribers", "tag", "sleep", "cleo@example.com").stdout == "tagged 1\n"
    assert audience("subscribers", "untag", "vip", "cleo@example.com").stdout == "untagged 1\n"
    assert audience("subscribers", "unsubscribe", "cleo@example.com").stdout == "cleo@example.com\tunsubscribed\n"
    again = audience("subscribers", "add", "cleo@example.com")
    assert (again.exit_code, again.stderr) == (1, "campaign: error: cleo@example.com is unsubscribed; it stays "
                                                  "off the list\n")
    refused = audience("subscribers", "delete", "cleo@example.com", input="n\n")
    assert refused.exit_code == 1 and "Erase 1 subscriber(s) for good?" in refused.stderr
    assert audience("subscribers", "delete", "cleo@example.com", "--yes").stdout == "cleo@example.com\terased\n"
    assert audience("subscribers", "count").stdout.endswith("erased\t1\n")


def test_export_csv_and_jsonl(audience: Campaign, tmp_path: Path) -> None:
    load(audience, tmp_path)
    exported = audience("subscribers", "export", "--segment", "back-pain")
    lines = exported.stdout.splitlines()
    assert lines[0] == ("email,first_name,last_name,tags,timezone,status,consent_source,consent_at,signed_up,"
                        "city,attributes")
    assert lines[1].startswith("ana@example.com,Ana,Lopez,back-pain,,subscribed,import:patients.csv,")
    assert lines[1].endswith(",San Francisco,") and len(lines) == 2
    assert exported.stderr == "Exported 1 subscriber(s).\n"
    out = tmp_path / "all.jsonl"
    assert audience("subscribers", "export", "--format", "jsonl", "-o", str(out)).exit_code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["email"], r["tags"], r["fields"]) for r in records] == [
        ("ana@example.com", ["back-pain"], {"city": "San Francisco"}), ("ben@example.com", ["sleep"], {"city": "Portland"})]


def test_errors_are_one_line(audience: Campaign, tmp_path: Path) -> None:
    missing = audience("subscribers", "import", str(tmp_path / "nope.csv"))
    assert (missing.exit_code, missing.stderr) == (1, f"campaign: error: {tmp_path / 'nope.csv'}: no such file\n")
    bad = audience("segments", "count", 'cty == "x"')
    assert bad.exit_code == 1
    assert bad.stderr.startswith("campaign: error: segment expression, column 1: unknown field 'cty' (known: email,")
    assert audience("segments", "show", "nope").stderr == ("campaign: error: no saved segment 'nope' (known: "
                                                           "back-pain, new-patients)\n")
    assert audience("subscribers", "unsubscribe", "zed@example.com").stderr == (
        "campaign: error: no subscriber 'zed@example.com'\n")
    assert audience("subscribers", "add", "x@example.com", "--field", "oops").stderr == (
        "campaign: error: --field 'oops' must look like name=value\n")
    too_long = audience("subscribers", "add", "x@example.com", "--first-name", "X" * 300)
    assert (too_long.exit_code, too_long.stderr) == (1, "campaign: error: first_name is 300 characters long "
                                                        "(the limit is 200)\n")


def test_segments_past_the_limits_are_one_line_errors(audience: Campaign) -> None:
    accepted = " or ".join(["True"] * 250)
    assert audience("segments", "count", accepted).stdout == "0\n"
    unstorable = "(NUL characters and lone surrogates cannot be stored)"
    for expression, message in [
        (accepted + " or True", (f"column {len(accepted) + 5}: too many conditions (the limit is 250 in all; "
                                 "a list such as city in [\"a\", \"b\"] counts as one)")),
        ("not " * 900 + "True", "column 81: nested too deeply (the limit is 20 levels)"),
        ("first_name < 'b' or " + "-" * 5_000 + "1 < 2", "nested too deeply (the limit is 20 levels)"),
        ("status in [" + ", ".join(["'x'"] * 1_001) + "]",
         "column 11: a list may hold at most 1,000 items (this one has 1,001)"),
        ('first_name == "\\x00"', f"column 15: text may not contain '\\x00' {unstorable}"),
        # An argument that is not UTF-8 reaches Python with lone surrogates in it.
        ('status == "\udcff"', f"column 12: text may not contain '\\udcff' {unstorable}"),
        ("signed_up > days_ago(1e9)",
         "column 22: days_ago() takes a number of days from 0 to 36,500, such as days_ago(90)"),
    ]:
        result = audience("segments", "count", expression)
        where = "segment expression: " if message.startswith("nested") else "segment expression, "
        assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"campaign: error: {where}{message}\n")
    padded = audience("segments", "count", "True" + " " * 10_000 + "or True")
    assert padded.stderr == "campaign: error: segment expression is too long: 10,011 characters (the limit is 10,000)\n"


def test_files_that_cannot_be_read_or_written_are_one_line_errors(campaign: Campaign, tmp_path: Path) -> None:
    unreadable = campaign("subscribers", "import", "/proc/self/mem")
    assert (unreadable.exit_code, unreadable.stderr) == (
        1, "campaign: error: /proc/self/mem: cannot be read: Input/output error\n")
    unwritable = campaign("subscribers", "export", "-o", "/proc/nope/x.csv")
    assert (unwritable.exit_code, unwritable.stderr) == (
        1, "campaign: error: /proc/nope/x.csv: cannot write: No such file or directory\n")
    assert campaign("subscribers", "count").stdout.startswith("subscribed\t0\n")  # nothing was imported


def test_counting_a_segment_loads_only_what_counting_needs(campaign: Campaign) -> None:
    # `segments count` is run by hand and by scripts; importing, exporting and the access report
    # are stages of their own, loaded only by the commands that use them.
    probe = ("import json, sys\n"
             "from pipeline.cli import cli\n"
             f"try:\n    cli(['--workspace', {str(campaign.root)!r}, 'segments', 'count', '\"vip\" in tags'],"
             " prog_name='campaign')\n"
             "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
             "unneeded = ('trafilatura', 'lxml', 'mjml', 'dkim', 'apscheduler', 'jinja2', 'markdown_it',\n"
             "            'pipeline.audience.importing', 'pipeline.audience.export', 'pipeline.audience.access',\n"
             "            'pipeline.content.build', 'pipeline.delivery.mime')\n"
             "print(json.dumps(sorted({m for m in sys.modules if m.startswith(unneeded)})))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["0", "[]"]


def test_what_the_database_refuses_in_a_bulk_import_is_one_line(audience: Campaign, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # New rows reach PostgreSQL through COPY, straight from the driver, not through SQLAlchemy.
    # The parser refuses names longer than their column; let one through to see the database's refusal.
    monkeypatch.setattr("pipeline.audience.values.MAX_TEXT", 1_000)
    source = tmp_path / "long.csv"
    source.write_text(f"email,first_name\nana@example.com,{'A' * 300}\n", encoding="utf-8")
    result = audience("subscribers", "import", str(source))
    assert audience.db_url is not None
    if audience.db_url.startswith("sqlite"):  # SQLite does not enforce a column's length
        assert (result.exit_code, result.stdout) == (0, "added 1, updated 0, unchanged 0, rejected 0\n")
        return
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == ("campaign: error: the database refused a change (value too long for type character "
                             "varying(200)); nothing of this command's change was kept\n")
    assert audience("subscribers", "count").stdout.splitlines()[0].endswith("\t0")
