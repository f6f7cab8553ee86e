"""`campaign bounces import` as a user runs it, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.db.engine import Store
from tests.conftest import Campaign, edit
from tests.delivery.test_bounces import (
    MAILDIR,
    PROVIDER_CSV,
    SECRET,
    dsn,
    our_id,
    populate,
)


@pytest.fixture
def bounced(audience: Campaign, monkeypatch: pytest.MonkeyPatch) -> Campaign:
    """The CLI on a list of eight subscribers, one send, and the secret the fixtures' Message-IDs were made with."""
    monkeypatch.setenv("CAMPAIGN_SECRET", SECRET)
    assert audience.db_url is not None
    store = Store(audience.db_url)
    populate(store)
    store.close()
    return audience


def test_a_maildir_then_the_same_again(bounced: Campaign) -> None:
    first = bounced("bounces", "import", str(MAILDIR))
    assert (first.exit_code, first.stdout, first.stderr) == (
        0, "hard 2, soft 1, complaints 1, suppressed 3, unmatched 0, not a report 1, already imported 0\n", "")
    assert bounced("subscribers", "count").stdout == ("subscribed\t5\nunsubscribed\t0\nbounced\t2\ncomplained\t1\n"
                                                      "pending\t0\nerased\t0\n")
    again = bounced("bounces", "import", str(MAILDIR))
    assert (again.exit_code, again.stdout) == (
        0, "hard 0, soft 0, complaints 0, suppressed 0, unmatched 0, not a report 1, already imported 4\n")


def test_a_provider_csv_and_a_single_message(bounced: Campaign) -> None:
    csv = bounced("bounces", "import", str(PROVIDER_CSV))
    assert (csv.exit_code, csv.stdout) == (
        0, "hard 2, soft 1, complaints 1, suppressed 2, unmatched 1, not a report 1, already imported 0\n")
    one = bounced("bounces", "import", str(MAILDIR / "cur" / "1772460001.M3P201.mx1"))
    assert (one.exit_code, one.stdout) == (
        0, "hard 1, soft 0, complaints 0, suppressed 1, unmatched 0, not a report 0, already imported 0\n")
    rows = [line.split("\t") for line in bounced("subscribers", "list").stdout.splitlines()]
    assert [(row[0], row[3]) for row in rows if row[3] != "subscribed"] == [
        ("cleo@example.com", "bounced"), ("erin@example.com", "bounced"), ("gus@example.com", "complained")]


def test_dry_run_says_so_and_saves_nothing(bounced: Campaign) -> None:
    result = bounced("bounces", "import", str(MAILDIR), "--dry-run")
    assert (result.exit_code, result.stdout, result.stderr) == (
        0, "hard 2, soft 1, complaints 1, suppressed 3, unmatched 0, not a report 1, already imported 0\n",
        "Dry run: nothing was saved.\n")
    assert bounced("subscribers", "count").stdout.startswith("subscribed\t8\n")


def test_the_soft_limit_comes_from_campaign_toml(bounced: Campaign, tmp_path: Path) -> None:
    edit(bounced.root / "campaign.toml", "soft_limit = 3", "soft_limit = 1")
    report = tmp_path / "soft.eml"
    report.write_bytes(dsn("s1", "ben@example.com", "delayed", "4.2.2", our_id(2)))
    result = bounced("bounces", "import", str(report))
    assert result.stdout == ("hard 0, soft 1, complaints 0, suppressed 1, unmatched 0, not a report 0, "
                             "already imported 0\n")
    assert "ben@example.com\t\t\tbounced\t" in bounced("subscribers", "list").stdout


def test_bad_paths_and_files_are_one_line_errors(bounced: Campaign, tmp_path: Path) -> None:
    missing = bounced("bounces", "import", str(tmp_path / "nope"))
    assert (missing.exit_code, missing.stdout, missing.stderr) == (
        1, "", f"campaign: error: {tmp_path / 'nope'}: no such file or folder\n")
    wrong = tmp_path / "contacts.csv"
    wrong.write_text("name,phone\nAna,555\n")
    refused = bounced("bounces", "import", str(wrong))
    assert (refused.exit_code, refused.stderr) == (
        1, f"campaign: error: {wrong}: no email or recipient column (found: name, phone)\n")
    assert bounced("subscribers", "count").stdout.startswith("subscribed\t8\n")


def test_help_has_examples(campaign: Campaign) -> None:
    result = campaign("bounces", "import", "--help")
    assert result.exit_code == 0
    assert "campaign bounces import ~/Maildir/.Bounces" in result.stdout
    assert "campaign bounces import provider-bounces.csv --dry-run" in result.stdout
