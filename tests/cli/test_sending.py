"""`campaign send`, `test-send` and `status` against a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pipeline.audience.subscribers import Changes, add
from pipeline.db.engine import Store
from pipeline.db.schema import subscribers
from tests.conftest import Campaign
from tests.smtp_server import SmtpTestServer

SUBJECT = "Can acupuncture ease persistent back pain?"


def people(campaign: Campaign, count: int, tag: str = "back-pain", start: int = 0) -> list[str]:
    store = Store(campaign.db_url or f"sqlite:///{campaign.root / 'campaign.db'}")
    addresses = [f"patient{n}@example.com" for n in range(start, start + count)]
    with store.transaction() as conn:
        for n, address in enumerate(addresses, start=start):
            add(conn, address, Changes(first_name=f"Pat{n}", tags={tag}), "test")
    store.close()
    return addresses


def send(campaign: Campaign, server: SmtpTestServer, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return campaign("--transport", server.url, "send", "back-pain", *args, input=input)


def test_each_recipient_gets_one_standard_message(audience: Campaign, smtp_server: SmtpTestServer) -> None:
    addresses = people(audience, 12)
    people(audience, 3, tag="sleep", start=100)  # outside the segment
    result = send(audience, smtp_server, "--yes")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "queued 0\tsending 0\tsent 12\tfailed 0\tskipped 0\tunknown 0\n"
    assert result.stderr.endswith(f"back-pain is sent, via smtp://127.0.0.1:{smtp_server.port}.\n")
    assert smtp_server.recipients() == {a: 1 for a in addresses}
    received = {m.recipients[0]: m for m in smtp_server.received}
    message = received["patient3@example.com"].message
    assert message["Subject"] == SUBJECT
    assert message["To"] == "Pat3 <patient3@example.com>"
    assert message["From"] == '"Dr. Mei Lin at Willow Creek Acupuncture" <newsletter@willowcreek-acupuncture.example>'
    assert message["Reply-To"] == "frontdesk@willowcreek-acupuncture.example"
    assert re.fullmatch(r"<back-pain\.1\.\d+\.[0-9a-f]{12}@willowcreek-acupuncture\.example>", message["Message-ID"])
    assert message["Date"] and message["MIME-Version"] == "1.0"
    assert re.fullmatch(r"<https://willowcreek-acupuncture\.example/email/unsubscribe/[\w.-]+>, "
                        r"<mailto:unsubscribe@willowcreek-acupuncture\.example\?subject=unsubscribe%20[\w.-]+>",
                        message["List-Unsubscribe"])
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Willow Creek health newsletter <newsletter.willowcreek-acupuncture.example>"
    assert received["patient3@example.com"].envelope_from == "bounces@willowcreek-acupuncture.example"
    assert message.get_content_type() == "multipart/alternative"
    text, html = list(message.iter_parts())
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert "Hi Pat3," in text.get_content() and "Hi Pat3," in html.get_content()
    assert "https://willowcreek-acupuncture.example/book?utm_source=newsletter&utm_medium=email" \
           "&utm_campaign=back-pain" in text.get_content()
    for data in (m.data for m in smtp_server.received):
        assert max(len(line) for line in data.split(b"\r\n")) <= 998

    again = send(audience, smtp_server, "--yes")
    assert (again.exit_code, again.stdout) == (0, "")
    assert "was sent on" in again.stderr
    assert smtp_server.recipients() == {a: 1 for a in addresses}


def test_confirmation_dry_run_and_limit(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    people(campaign, 5)
    dry = send(campaign, smtp_server, "--dry-run")
    assert (dry.exit_code, dry.stdout) == (0, "5\n")
    assert dry.stderr == (f"Would send {SUBJECT!r} to 5 recipient(s) of 'back-pain' via "
                          f"smtp://127.0.0.1:{smtp_server.port}.\n")
    refused = send(campaign, smtp_server, input="n\n")
    assert refused.exit_code == 1 and "to 5 recipient(s)" in refused.stderr
    assert smtp_server.received == []
    first = send(campaign, smtp_server, "--limit", "2", input="y\n")
    assert first.stdout == "queued 3\tsending 0\tsent 2\tfailed 0\tskipped 0\tunknown 0\n"
    assert "continues where this run stopped" in first.stderr
    rest = send(campaign, smtp_server, "--yes")
    assert rest.stdout == "queued 0\tsending 0\tsent 5\tfailed 0\tskipped 0\tunknown 0\n"
    assert sum(smtp_server.recipients().values()) == 5


def test_a_started_send_continues_with_its_segment_however_it_is_named(campaign: Campaign,
                                                                       smtp_server: SmtpTestServer) -> None:
    people(campaign, 5)
    people(campaign, 2, tag="knee", start=5)
    first = send(campaign, smtp_server, "--segment", "back-pain", "--limit", "2", "--yes")
    assert first.stdout == "queued 3\tsending 0\tsent 2\tfailed 0\tskipped 0\tunknown 0\n"
    other = send(campaign, smtp_server, "--segment", '"knee" in tags', "--yes")
    assert other.exit_code == 1
    assert other.stderr == ('campaign: error: back-pain already has its recipients ("back-pain" in tags); '
                            "--segment cannot change them\n")
    again = send(campaign, smtp_server, "--segment", "back-pain", "--limit", "1", "--yes")  # the saved name
    assert again.stdout == "queued 2\tsending 0\tsent 3\tfailed 0\tskipped 0\tunknown 0\n"
    rest = send(campaign, smtp_server, "--segment", '"back-pain" in tags', "--yes")  # its expression
    assert rest.stdout == "queued 0\tsending 0\tsent 5\tfailed 0\tskipped 0\tunknown 0\n"
    assert sum(smtp_server.recipients().values()) == 5


def test_temporary_failures_drops_and_421_are_retried(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    addresses = people(campaign, 6)
    smtp_server.behaviour.temporary = {addresses[0]: 2}
    smtp_server.behaviour.drop_on_rcpt = {addresses[1]: 1}
    smtp_server.behaviour.answer_421 = 1
    first = send(campaign, smtp_server, "--yes", "--retry-after", "0", "--concurrency", "1")
    assert first.exit_code == 0, first.stderr
    for _ in range(5):
        if sum(smtp_server.recipients().values()) == 6:
            break
        assert send(campaign, smtp_server, "--yes", "--retry-after", "0").exit_code == 0
    assert smtp_server.recipients() == {a: 1 for a in addresses}
    status = json.loads(campaign("status", "back-pain", "--json").stdout)
    assert status[0]["counts"]["sent"] == 6 and status[0]["state"] == "sent"


def test_hard_bounce_fails_and_suppresses(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    addresses = people(campaign, 3)
    smtp_server.behaviour.rcpt_replies = {addresses[1]: "550 5.1.1 <patient1@example.com>: no such user"}
    result = send(campaign, smtp_server, "--yes")
    assert result.stdout == "queued 0\tsending 0\tsent 2\tfailed 1\tskipped 0\tunknown 0\n"
    assert "1 address(es) bounced and are now suppressed." in result.stderr
    status = campaign("status", "back-pain")
    assert "  failed: patient1@example.com: 550 5.1.1 <patient1@example.com>: no such user\n" in status.stdout
    listed = campaign("subscribers", "list").stdout
    assert "patient1@example.com\tPat1\t\tbounced\tback-pain" in listed


def test_suppressed_addresses_never_get_mail(audience: Campaign, smtp_server: SmtpTestServer) -> None:
    addresses = people(audience, 4)
    audience("subscribers", "unsubscribe", addresses[0])
    first = send(audience, smtp_server, "--yes", "--limit", "1")
    assert first.exit_code == 0
    audience("subscribers", "unsubscribe", addresses[2])  # after the snapshot: checked when its turn comes
    audience("subscribers", "delete", addresses[3], "--yes")
    rest = send(audience, smtp_server, "--yes")
    assert rest.stdout == "queued 0\tsending 0\tsent 1\tfailed 0\tskipped 2\tunknown 0\n"
    assert smtp_server.recipients() == {addresses[1]: 1}


def test_subscriber_data_cannot_inject_headers_or_markup(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    store = Store(f"sqlite:///{campaign.root / 'campaign.db'}")
    with store.transaction() as conn:
        add(conn, "eve@example.com", Changes(tags={"back-pain"}), "test")
        conn.execute(subscribers.update().where(subscribers.c.email_key == "eve@example.com").values(
            first_name="Eve\r\nBcc: x@example.com <script>alert(1)</script>", last_name="Smith"))
    store.close()
    assert send(campaign, smtp_server, "--yes").exit_code == 0
    (received,) = smtp_server.received
    assert received.recipients == ["eve@example.com"]
    message = received.message
    assert message["Bcc"] is None and "x@example.com" not in message["To"].split("<")[-1]
    assert message["To"] == '"Eve Bcc: x@example.com <script>alert(1)</script> Smith" <eve@example.com>'
    text, html = (part.get_content() for part in message.iter_parts())
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Hi Eve\nBcc: x@example.com <script>alert(1)</script>," in text  # in the body, only text
    header_block = received.data.split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"\r\nBcc:", header_block)


def test_test_send_leaves_deliveries_alone(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    people(campaign, 2)
    result = campaign("--transport", smtp_server.url, "test-send", "back-pain", "--to", "me@clinic.example",
                      "--to", "patient1@example.com")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ("me@clinic.example\t250 2.0.0 Message accepted\n"
                             "patient1@example.com\t250 2.0.0 Message accepted\n")
    subjects = {m.recipients[0]: m.message for m in smtp_server.received}
    assert subjects["me@clinic.example"]["Subject"] == f"[TEST] {SUBJECT}"
    assert "Hi Pat1," in list(subjects["patient1@example.com"].iter_parts())[0].get_content()
    assert subjects["me@clinic.example"]["Message-ID"] != subjects["patient1@example.com"]["Message-ID"]
    status = campaign("status", "back-pain")
    assert (status.exit_code, status.stderr) == (1, "campaign: error: campaign 'back-pain' has not been sent or "
                                                    "scheduled yet\n")


def test_maildir_is_the_default_outbox(campaign: Campaign) -> None:
    people(campaign, 2)
    result = campaign("send", "back-pain", "--yes")
    assert result.exit_code == 0
    outbox = campaign.root / "outbox" / "new"
    files = sorted(outbox.iterdir())
    assert len(files) == 2
    assert b"Delivered-To: patient" in files[0].read_bytes()


def test_an_empty_folder_made_beforehand_is_a_maildir_outbox(campaign: Campaign, tmp_path: Path) -> None:
    people(campaign, 2)
    box = tmp_path / "mounted"
    box.mkdir()
    result = campaign("--transport", f"maildir:{box}", "send", "back-pain", "--yes")
    assert result.exit_code == 0, result.stderr
    assert len(list((box / "new").iterdir())) == 2
    assert sorted(p.name for p in box.iterdir()) == ["cur", "new", "tmp"]


def test_a_maildir_that_cannot_be_made_stops_the_send_and_loses_nothing(campaign: Campaign, tmp_path: Path) -> None:
    people(campaign, 2)
    taken = tmp_path / "a-file"
    taken.write_text("not a folder\n")
    result = campaign("--transport", f"maildir:{taken}", "send", "back-pain", "--yes")
    assert result.exit_code == 1
    assert result.stderr.endswith(f"campaign: error: {taken}: cannot open the Maildir (Not a directory)\n")
    status = json.loads(campaign("status", "back-pain", "--json").stdout)
    assert (status[0]["counts"]["queued"], status[0]["counts"]["sending"], status[0]["counts"]["unknown"]) == (2, 0, 0)
    again = campaign("--transport", f"maildir:{tmp_path / 'box'}", "send", "back-pain", "--yes")
    assert again.exit_code == 0, again.stderr
    assert len(list((tmp_path / "box" / "new").iterdir())) == 2


def test_lint_errors_block_sending(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    people(campaign, 1)
    article = campaign.root / "campaigns" / "back-pain" / "article.md"
    article.write_text(article.read_text() + "\n[broken](#)\n")
    result = send(campaign, smtp_server, "--yes")
    assert result.exit_code == 1
    assert result.stderr.startswith("campaign: error: campaign 'back-pain' has 1 lint error(s), the first: "
                                    "error: email.html:")
    assert smtp_server.received == []


def test_unreachable_server_is_a_failure_and_loses_nothing(campaign: Campaign) -> None:
    people(campaign, 2)
    result = campaign("--transport", "smtp://127.0.0.1:9", "send", "back-pain", "--yes")
    assert result.exit_code == 1
    assert result.stderr.endswith("campaign: error: cannot connect to smtp://127.0.0.1:9: [Errno 111] Connection "
                                  "refused\n")
    status = json.loads(campaign("status", "back-pain", "--json").stdout)
    assert status[0]["counts"]["queued"] == 2 and status[0]["counts"]["unknown"] == 0


def test_status_shows_bounces_reported_after_the_send(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    from tests.delivery.test_bounces import dsn

    people(campaign, 2)
    assert campaign("--transport", smtp_server.url, "send", "back-pain", "--yes").exit_code == 0
    first = next(m for m in smtp_server.received if m.recipients == ["patient0@example.com"]).message
    report = campaign.root / "report.eml"
    report.write_bytes(dsn("r1", "patient0@example.com", "failed", "5.1.1", first["Message-ID"]))
    imported = campaign("bounces", "import", str(report))
    assert imported.exit_code == 0, imported.stderr
    status = campaign("status", "back-pain")
    assert "  bounces: hard 1  soft 0  complaints 0\n" in status.stdout
    assert json.loads(campaign("status", "--json").stdout)[0]["bounces"] == {"hard": 1, "soft": 0, "complaint": 0}


def test_one_secret_however_many_processes_start_at_once(tmp_path: Path) -> None:
    import threading

    from pipeline.audience.tokens import SECRET_FILE, load_secret

    found: list[str] = []
    threads = [threading.Thread(target=lambda: found.append(load_secret(tmp_path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and len(found[0]) >= 40
    assert (tmp_path / SECRET_FILE).stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [SECRET_FILE]


# A send is one frozen, retryable unit.

def test_a_started_send_delivers_the_content_it_started_with(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    addresses = people(campaign, 5)
    first = send(campaign, smtp_server, "--yes", "--limit", "2")
    assert first.exit_code == 0, first.stderr
    settings = campaign.root / "campaigns/back-pain/settings.toml"
    settings.write_text(settings.read_text().replace(SUBJECT, "A new subject, written later"))
    article = campaign.root / "campaigns/back-pain/article.md"
    article.write_text(article.read_text().replace("Hi *|first_name:there|*,", "Hello again,"))
    rest = send(campaign, smtp_server, "--yes")
    assert rest.exit_code == 0, rest.stderr
    assert "campaigns/back-pain changed since this send started; it goes on with the content it started with" \
           in rest.stderr.replace("\n", " ")
    assert smtp_server.recipients() == {a: 1 for a in addresses}
    assert {m.message["Subject"] for m in smtp_server.received} == {SUBJECT}
    assert all("Hello again" not in m.data.decode() for m in smtp_server.received)
    status = campaign("status", "back-pain")
    digest = json.loads(campaign("status", "back-pain", "--json").stdout)[0]["content"]
    assert re.fullmatch(r"[0-9a-f]{12}", digest)
    assert f"  subject: {SUBJECT}  (content {digest})\n" in status.stdout
    refused = send(campaign, smtp_server, "--yes", "--restart-content", "--retry-failed")
    assert refused.exit_code == 1
    assert refused.stderr == ("campaign: error: back-pain has 5 message(s) out already; --restart-content is refused "
                              "once anything was sent (make a new campaign for the new content)\n")


def test_restart_content_takes_the_new_build_while_nothing_was_sent(campaign: Campaign,
                                                                   smtp_server: SmtpTestServer) -> None:
    from pipeline.clock import utcnow
    from pipeline.delivery.sending import begin_send, plan
    from pipeline.settings.workspace import load_workspace

    people(campaign, 3)
    workspace = load_workspace(campaign.root)
    store = Store(f"sqlite:///{campaign.root / 'campaign.db'}")
    begin_send(store, plan(store, workspace, "back-pain"), "back-pain", utcnow())  # begun, nothing sent yet
    store.close()
    settings = campaign.root / "campaigns/back-pain/settings.toml"
    settings.write_text(settings.read_text().replace(SUBJECT, "The corrected subject"))
    result = send(campaign, smtp_server, "--yes", "--restart-content")
    assert result.exit_code == 0, result.stderr
    assert {m.message["Subject"] for m in smtp_server.received} == {"The corrected subject"}
    events = [e["event"] for e in json.loads(campaign("status", "back-pain", "--json").stdout)[0]["history"]]
    assert events == ["started", "content-replaced", "finished"]


def test_retry_failed_and_unknown_reopen_a_finished_send(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    import sqlalchemy as sa

    from pipeline.db.schema import deliveries

    addresses = people(campaign, 4)
    smtp_server.behaviour.rcpt_replies = {addresses[1]: "554 5.7.1 rejected by policy"}
    first = send(campaign, smtp_server, "--yes")
    assert first.stdout == "queued 0\tsending 0\tsent 3\tfailed 1\tskipped 0\tunknown 0\n"
    # What a sender killed mid-message leaves behind (the kill itself is tested in test_send_safety).
    store = Store(f"sqlite:///{campaign.root / 'campaign.db'}")
    with store.transaction() as conn:
        conn.execute(deliveries.update().where(deliveries.c.subscriber_id == sa.select(subscribers.c.id).where(
            subscribers.c.email_key == addresses[2]).scalar_subquery()).values(state="unknown"))
    store.close()
    nothing = send(campaign, smtp_server, "--yes")
    assert (nothing.exit_code, nothing.stdout) == (0, "")
    assert "was sent on" in nothing.stderr
    smtp_server.behaviour.rcpt_replies = {}
    again = send(campaign, smtp_server, "--yes", "--retry-failed", "--retry-unknown")
    assert again.exit_code == 0, again.stderr
    assert again.stdout == "queued 0\tsending 0\tsent 4\tfailed 0\tskipped 0\tunknown 0\n"
    assert "2 delivery(ies) were queued again as asked." in again.stderr
    assert again.stderr.endswith(f"back-pain is sent, via smtp://127.0.0.1:{smtp_server.port}.\n")
    assert smtp_server.recipients() == {addresses[0]: 1, addresses[1]: 1, addresses[2]: 2, addresses[3]: 1}
    found = json.loads(campaign("status", "back-pain", "--json").stdout)[0]
    assert found["state"] == "sent"
    assert [(e["event"], e["detail"]) for e in found["history"]] == [
        ("started", None), ("finished", None), ("reopened", "1 unknown, 1 failed queued again"), ("finished", None)]
    assert re.search(r"\n  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  reopened: 1 unknown, 1 failed queued again\n",
                     campaign("status", "back-pain").stdout)


def test_a_run_that_leaves_unknown_rows_says_how_to_resend_them(campaign: Campaign,
                                                                smtp_server: SmtpTestServer) -> None:

    from pipeline.db.schema import deliveries

    people(campaign, 3)
    assert send(campaign, smtp_server, "--yes", "--limit", "1").exit_code == 0
    store = Store(f"sqlite:///{campaign.root / 'campaign.db'}")
    with store.transaction() as conn:
        conn.execute(deliveries.update().where(deliveries.c.state == "sent").values(state="unknown"))
    store.close()
    rest = send(campaign, smtp_server, "--yes")
    assert rest.stdout == "queued 0\tsending 0\tsent 2\tfailed 0\tskipped 0\tunknown 1\n"
    assert ("1 message(s) may or may not have arrived (unknown): a sender stopped while sending them. Check, then "
            "'campaign send back-pain --retry-unknown' sends them again.") in rest.stderr


def test_test_send_answers_for_each_address_and_fails_if_any_was_refused(campaign: Campaign,
                                                                         smtp_server: SmtpTestServer) -> None:
    smtp_server.behaviour.rcpt_replies = {"gone@example.com": "550 5.1.1 <gone@example.com>: no such user"}
    result = campaign("--transport", smtp_server.url, "test-send", "back-pain", "--to", "gone@example.com",
                      "--to", "me@clinic.example")
    assert result.exit_code == 1
    assert result.stdout == ("gone@example.com\trefused: 550 5.1.1 <gone@example.com>: no such user\n"
                             "me@clinic.example\t250 2.0.0 Message accepted\n")
    assert result.stderr == (f"campaign: error: 1 of 2 test message(s) were refused (via smtp://127.0.0.1:"
                             f"{smtp_server.port})\n")
    assert [m.recipients for m in smtp_server.received] == [["me@clinic.example"]]


def test_test_send_refuses_what_is_not_an_address_before_connecting(campaign: Campaign,
                                                                    smtp_server: SmtpTestServer) -> None:
    result = campaign("--transport", smtp_server.url, "test-send", "back-pain", "--to", "me@clinic.example",
                      "--to", "not-an-email")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith("campaign: error: --to 'not-an-email' is not an e-mail address: ")
    assert smtp_server.received == [] and not smtp_server.rcpt_attempts


def test_a_foreground_send_retries_temporary_failures_within_its_window(campaign: Campaign,
                                                                        smtp_server: SmtpTestServer) -> None:
    addresses = people(campaign, 3)
    smtp_server.behaviour.temporary = {addresses[0]: 2}  # greylisted twice
    result = send(campaign, smtp_server, "--yes", "--retry-after", "0.2")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "queued 0\tsending 0\tsent 3\tfailed 0\tskipped 0\tunknown 0\n"
    assert "Waiting to retry temporary failures at " in result.stderr
    assert smtp_server.rcpt_attempts[addresses[0]] == 3
    assert smtp_server.recipients() == {a: 1 for a in addresses}


def test_what_is_left_after_the_window_is_left_to_send_due(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    from pipeline.clock import human, utcnow

    addresses = people(campaign, 2)
    smtp_server.behaviour.temporary = {addresses[0]: 1}
    before = utcnow()
    result = send(campaign, smtp_server, "--yes", "--retry-window", "0")
    assert result.stdout == "queued 1\tsending 0\tsent 1\tfailed 0\tskipped 0\tunknown 0\n"
    waiting = re.search(r"1 delivery\(ies\) wait for a retry, the next at (\S+ \S+ UTC); 'campaign send-due' \(cron\) "
                        r"or 'campaign scheduler' sends them", result.stderr)
    assert waiting is not None and waiting.group(1) > human(before)  # a time still ahead, not one gone by


def test_status_counts_mailboxes_refused_during_the_send_as_hard_bounces(campaign: Campaign,
                                                                          smtp_server: SmtpTestServer) -> None:
    addresses = people(campaign, 4)
    smtp_server.behaviour.rcpt_replies = {a: f"550 5.1.1 <{a}>: no such user" for a in addresses[:2]}
    assert send(campaign, smtp_server, "--yes").exit_code == 0
    assert "  bounces: hard 2  soft 0  complaints 0\n" in campaign("status", "back-pain").stdout
    # Importing the DSNs of the same refusals later adds no second count.
    assert json.loads(campaign("status", "--json").stdout)[0]["bounces"] == {"hard": 2, "soft": 0, "complaint": 0}


def test_a_send_goes_on_past_whole_batches_of_readers_who_left(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    addresses = people(campaign, 130)
    assert send(campaign, smtp_server, "--yes", "--limit", "1", "--concurrency", "1").exit_code == 0
    # More than two claims' worth of readers leave after the recipients were fixed.
    left = campaign("subscribers", "unsubscribe", *addresses[1:121])
    assert left.exit_code == 0, left.stderr
    rest = send(campaign, smtp_server, "--yes", "--concurrency", "1")
    assert rest.exit_code == 0, rest.stderr
    assert rest.stdout == "queued 0\tsending 0\tsent 10\tfailed 0\tskipped 120\tunknown 0\n"
    assert rest.stderr.endswith(f"back-pain is sent, via smtp://127.0.0.1:{smtp_server.port}.\n")
    assert smtp_server.recipients() == {a: 1 for a in [addresses[0], *addresses[121:]]}
