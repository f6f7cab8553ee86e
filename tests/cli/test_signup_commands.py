"""The commands around signups: signup-snippet, subscribers show (a GDPR access request),
subscribers list --status pending and subscribers purge-pending."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

from pipeline.audience import consent, signup, signup_limits
from pipeline.audience.consent import Client
from pipeline.audience.subscribers import get
from pipeline.db.engine import Store
from pipeline.delivery.sends import create_send
from pipeline.engagement.events import CLICK, OPEN, Event, events_of, record
from pipeline.settings.workspace import load_workspace
from tests.conftest import Campaign, edit
from tests.tracked import BOOK

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Fields(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict[str, str | None]] = []
        self.inputs: list[dict[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "form":
            self.forms.append(dict(attrs))
        elif tag == "input":
            self.inputs.append(dict(attrs))


def test_the_snippet_posts_to_serve_with_the_forms_fields(campaign: Campaign) -> None:
    result = campaign("signup-snippet")
    assert result.exit_code == 0
    parsed = Fields(result.stdout)
    assert parsed.forms == [{"method": "post", "action": "https://willowcreek-acupuncture.example/email/subscribe",
                             "class": "newsletter-signup"}]
    names = [(i.get("name"), i.get("type")) for i in parsed.inputs]
    assert names == [("email", "email"), ("first_name", "text"), ("topic", "checkbox"), ("topic", "checkbox"),
                     ("topic", "checkbox"), ("website", "text"), ("consent_version", "hidden")]
    workspace = load_workspace(campaign.root)
    assert {"name": "consent_version", "type": "hidden", "value": workspace.signup.version} in parsed.inputs
    trap = next(i for i in parsed.inputs if i.get("name") == "website")
    assert trap["tabindex"] == "-1" and trap["autocomplete"] == "off"
    assert 'aria-hidden="true"' in result.stdout and workspace.signup.consent_text in result.stdout
    assert result.stderr == ""  # the site is base_url's: serve takes its forms


def test_the_snippet_says_when_serve_would_refuse_the_sites_forms(campaign: Campaign) -> None:
    config = campaign.root / "campaign.toml"
    edit(config, 'website = "https://willowcreek-acupuncture.example"', 'website = "https://www.clinic.example"')
    refused = campaign("signup-snippet")
    assert refused.exit_code == 0 and refused.stdout.startswith("<!-- Willow Creek Acupuncture: newsletter signup.")
    assert refused.stderr == ("note: campaign serve refuses forms from https://www.clinic.example:443 ([brand] "
                              "website) until it is in [signup] allowed_origins\n")
    edit(config, "allowed_origins = []", 'allowed_origins = ["https://www.clinic.example"]')
    assert campaign("signup-snippet").stderr == ""


def test_without_a_signup_section_the_snippet_is_an_error(campaign: Campaign) -> None:
    config = campaign.root / "campaign.toml"
    text = config.read_text()
    config.write_text(text[:text.index("[signup]")] + text[text.index("[bounces]"):])
    result = campaign("signup-snippet")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (f"campaign: error: {config}: has no [signup] section, so `campaign serve` has no form "
                             "to post to: add one (see docs/signup.md)\n")


def signed_up(audience: Campaign, email: str, at: datetime, confirm: bool = False) -> None:
    assert audience.db_url is not None
    store = Store(audience.db_url)
    workspace = load_workspace(audience.root)
    keys = signup_limits.Keys("x" * 40)
    made, _ = signup.read_form({"email": [email], "first_name": ["Ana"], "topic": ["sleep"]}, workspace.topics)
    assert made is not None
    with store.transaction() as conn:
        done = signup.request(conn, workspace.signup, keys, made, Client("203.0.113.9", "Browser/1"),
                              "https://willowcreek-acupuncture.example/news", at)
        if confirm:
            from pipeline.audience.subscribers import confirm_pending

            assert done.subscriber_id is not None and done.consent_id is not None
            confirm_pending(conn, done.subscriber_id, signup.CONFIRM_SOURCE, None, at + timedelta(minutes=2))
            consent.confirmed(conn, done.consent_id, done.subscriber_id, Client("203.0.113.10", "Phone/2"),
                              at + timedelta(minutes=2))
    store.close()


def test_show_answers_an_access_request_in_lines_or_json(audience: Campaign) -> None:
    signed_up(audience, "ana@example.com", NOW, confirm=True)
    shown = audience("subscribers", "show", "ANA@example.com")
    assert shown.exit_code == 0
    lines = shown.stdout.splitlines()
    assert lines[:10] == [
        "email: ana@example.com", "first name: Ana", "last name: -", "status: subscribed", "tags: sleep",
        "fields: -", "timezone: -", "signed up: 2026-11-23 12:00:00 UTC",
        "consent: web:signup-confirm at 2026-11-23 12:02:00 UTC", "consent records:"]
    workspace = load_workspace(audience.root)
    assert lines[10:15] == [
        f"  double-opt-in (web:signup), version {workspace.signup.version}",
        f"    text: {workspace.signup.consent_text}",
        "    form: https://willowcreek-acupuncture.example/news",
        "    requested: 2026-11-23 12:00:00 UTC from 203.0.113.9, Browser/1",
        "    confirmed: 2026-11-23 12:02:00 UTC from 203.0.113.10, Phone/2"]
    assert lines[15] == "history:"
    assert [line.split("\t")[1:] for line in lines[16:18]] == [["pending", "web:signup"],
                                                               ["subscribed", "web:signup-confirm"]]
    assert lines[18:] == ["messages:", "  none", "bounces and complaints:", "  none", "opens and clicks:", "  none"]
    as_json = json.loads(audience("subscribers", "show", "ana@example.com", "--json").stdout)
    assert set(as_json) == {"subscriber", "consents", "events", "messages", "bounces", "tracking"}
    assert (as_json["messages"], as_json["bounces"]) == ([], [])
    assert as_json["subscriber"]["email"] == "ana@example.com" and as_json["subscriber"]["status"] == "subscribed"
    (record,) = as_json["consents"]
    assert record["requested_ip"] == "203.0.113.9" and record["confirmed_at"] == "2026-11-23T12:02:00+00:00"
    assert [e["kind"] for e in as_json["events"]] == ["pending", "subscribed"]
    assert as_json["tracking"] == []
    missing = audience("subscribers", "show", "nobody@example.com")
    assert (missing.exit_code, missing.stderr) == (1, "campaign: error: no subscriber 'nobody@example.com'\n")


def test_show_lists_the_messages_sent_to_a_reader_and_the_bounces_reported(audience: Campaign) -> None:
    from tests.delivery.test_bounces import dsn

    signed_up(audience, "ana@example.com", NOW, confirm=True)
    edit(audience.root / "campaigns" / "back-pain" / "settings.toml", 'segment = "back-pain"', 'segment = "True"')
    assert audience("send", "back-pain", "--yes").exit_code == 0
    (sent,) = (audience.root / "outbox" / "new").iterdir()
    message_id = next(line.split(": ", 1)[1] for line in sent.read_text().splitlines()
                      if line.startswith("Message-ID: "))
    report = audience.root / "report.eml"
    report.write_bytes(dsn("r1", "ana@example.com", "failed", "5.1.1", message_id))
    assert audience("bounces", "import", str(report)).exit_code == 0
    as_json = json.loads(audience("subscribers", "show", "ana@example.com", "--json").stdout)
    (message,) = as_json["messages"]
    assert (message["campaign"], message["occurrence"], message["state"], message["message_id"]) == (
        "back-pain", "", "sent", message_id)
    (bounce,) = as_json["bounces"]
    assert (bounce["kind"], bounce["campaign"], bounce["status"]) == ("hard", "back-pain", "5.1.1")
    lines = audience("subscribers", "show", "ana@example.com").stdout.splitlines()
    start = lines.index("messages:")
    assert lines[start + 1].split("\t")[0::3] == ["  back-pain", message_id]
    assert lines[start + 2] == "bounces and complaints:"
    assert lines[start + 3].split("\t")[1:4] == ["hard", "back-pain", "5.1.1"]


def test_show_lists_the_opens_and_clicks_recorded_of_a_reader(audience: Campaign) -> None:
    signed_up(audience, "ana@example.com", NOW, confirm=True)
    signed_up(audience, "ben@example.com", NOW, confirm=True)
    assert audience.db_url is not None
    store = Store(audience.db_url)
    with store.transaction() as conn:
        ana, ben = (get(conn, a).id for a in ("ana@example.com", "ben@example.com"))
        send = create_send(conn, "back-pain", segment="back-pain", subject="Back pain", state="sent", now=NOW)
        digest = create_send(conn, "monthly", segment="all", subject="May", state="sent", now=NOW,
                             occurrence="2026-05")
        record(conn, [Event(OPEN, send.id, ana, 0, NOW + timedelta(hours=1), 3600, "browser", False),
                      Event(CLICK, digest.id, ana, 2, NOW + timedelta(hours=2), 7200, "scanner", True, BOOK),
                      Event(OPEN, send.id, ben, 0, NOW + timedelta(hours=1), 3600, "apple-proxy", True)])
    store.close()
    lines = audience("subscribers", "show", "ana@example.com").stdout.splitlines()
    assert lines[lines.index("opens and clicks:"):] == [
        "opens and clicks:",
        "  2026-11-23 13:00:00 UTC\topen\tback-pain\t-\tbrowser",
        f"  2026-11-23 14:00:00 UTC\tclick\tmonthly (2026-05)\t{BOOK}\tscanner, machine"]
    tracked = json.loads(audience("subscribers", "show", "ana@example.com", "--json").stdout)["tracking"]
    assert tracked == [
        {"at": "2026-11-23T13:00:00+00:00", "kind": "open", "campaign": "back-pain", "occurrence": "", "url": None,
         "agent": "browser", "machine": False},
        {"at": "2026-11-23T14:00:00+00:00", "kind": "click", "campaign": "monthly", "occurrence": "2026-05",
         "url": BOOK, "agent": "scanner", "machine": True}]
    # Erasure takes them with the reader.
    assert audience("subscribers", "delete", "ana@example.com", "--yes").exit_code == 0
    with Store(audience.db_url).reading() as conn:
        assert [e.subscriber_id for e in events_of(conn)] == [ben]


def test_list_by_status_and_purge_stale_pending_signups(audience: Campaign) -> None:
    assert audience("subscribers", "add", "patient@example.com").exit_code == 0
    signed_up(audience, "old@example.com", NOW - timedelta(days=45))
    signed_up(audience, "new@example.com", NOW - timedelta(days=2))
    assert audience("subscribers", "list", "--status", "subscribed").stdout == "patient@example.com\t\t\tsubscribed\t\n"
    assert audience("subscribers", "list", "--status", "pending").stdout == (
        "old@example.com\tAna\t\tpending\tsleep\nnew@example.com\tAna\t\tpending\tsleep\n")
    assert audience("subscribers", "list", "--status", "pending", "--segment", 'email.startswith("new")').stdout == (
        "new@example.com\tAna\t\tpending\tsleep\n")
    assert audience("subscribers", "count").stdout.splitlines()[4] == "pending\t2"
    assert audience("segments", "count", 'status == "pending"').stdout == "0\n"  # never a recipient
    assert audience("subscribers", "show", "old@example.com").stdout.splitlines()[8] == \
        "consent: not given yet (web:signup)"
    dry = audience("subscribers", "purge-pending", "--older-than", "30d", "--dry-run", "--now", NOW.isoformat())
    assert (dry.exit_code, dry.stdout) == (0, "would purge 1\n")
    done = audience("subscribers", "purge-pending", "--older-than", "30d", "--now", NOW.isoformat())
    assert (done.exit_code, done.stdout) == (0, "purged 1\n")
    assert audience("subscribers", "list", "--status", "pending").stdout == "new@example.com\tAna\t\tpending\tsleep\n"
    assert audience("subscribers", "purge-pending", "--older-than", "1d", "--now", NOW.isoformat()).stdout == \
        "purged 1\n"
    bad = audience("subscribers", "purge-pending", "--older-than", "a month")
    assert bad.exit_code == 2 and "'a month' is not an age like 30d, 12h or 2w" in bad.stderr


def test_imports_take_no_pending_status_from_the_command_line(audience: Campaign, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email\nana@example.com\n", encoding="utf-8")
    result = audience("subscribers", "import", str(path), "--status", "pending")
    assert result.exit_code == 2 and "'pending' is not one of" in result.stderr
