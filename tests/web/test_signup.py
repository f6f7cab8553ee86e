"""The signup form over real HTTP, its confirmation email received by a real SMTP server and its
link taken from that email, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.audience.signup import ConfirmLinks
from pipeline.audience.subscribers import Changes, add, erase, find, get, set_status
from pipeline.audience.tokens import Tokens
from pipeline.clock import utcnow
from pipeline.db.engine import Store
from pipeline.errors import NotFoundError
from pipeline.settings.workspace import load_workspace
from pipeline.web.app import create_app
from tests.pages import fetch, post_form, wait_for
from tests.smtp_server import SmtpTestServer
from tests.web.signup_site import OURS, SECRET, Served, serving
from tests.web.test_app import Forms, assert_private_page, running

ANA = "ana@example.com"
CLINIC_SITE = "https://www.willowcreek-acupuncture.example"


@pytest.fixture
def served(workspace_dir: Path, store: Store, smtp_server: SmtpTestServer,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setenv("CAMPAIGN_SIGNUP_ALLOWED_ORIGINS", CLINIC_SITE)
    with serving(load_workspace(workspace_dir), store, smtp_server) as site:
        yield site


def test_the_form_is_a_small_accessible_page_in_the_brands_colours(served: Served) -> None:
    for url in (served.form_url, f"{served.url}/email/subscribe"):
        reply = fetch(url)
        assert_private_page(reply, 200)
    page = reply.text
    assert "<h1>Subscribe to the Willow Creek Acupuncture newsletter</h1>" in page
    assert '<label for="signup-email">Email address</label>' in page
    assert ('<input type="email" id="signup-email" name="email" value="" required maxlength="254" '
            'autocomplete="email">') in page
    assert 'autocomplete="given-name"' in page
    assert '<label><input type="checkbox" name="topic" value="sleep"> Sleep and stress</label>' in page
    assert "background: #1f6f5c;" in page  # [brand] primary_color
    # The robot trap: out of sight, out of the Tab order, hidden from screen readers.
    assert '<div class="hp" aria-hidden="true">' in page and 'name="website" value="" tabindex="-1"' in page
    consent_text = served.workspace.signup.consent_text
    assert f'<p class="consent" id="signup-consent">{consent_text}</p>' in page
    assert '<button type="submit" aria-describedby="signup-consent">Subscribe</button>' in page
    (form,) = Forms(page).forms
    assert form["method"] == "post" and form["action"] is None
    assert form["fields"] == [("consent_version", served.workspace.signup.version)]  # the hidden fields


def test_a_signup_mails_a_link_whose_page_confirms_only_by_its_button(served: Served) -> None:
    reply = served.sign_up(ANA, "Ana", ("sleep", "made-up"), {"User-Agent": "Signup test/1.0"})
    assert_private_page(reply, 200)
    assert "<h1>Check your inbox</h1>" in reply.text
    assert served.subscriber(ANA) == ("pending", "Ana", ("sleep",))
    (mail,) = served.mails(1)
    message = mail.message
    assert mail.recipients == [ANA] and mail.envelope_from == "bounces@willowcreek-acupuncture.example"
    assert message["To"] == ANA
    assert message["Subject"] == "Please confirm your subscription to Willow Creek Acupuncture"
    assert message["Auto-Submitted"] == "auto-generated" and message["List-Unsubscribe"] is None
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    link = served.link(mail)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Hi Ana," in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f'href="{link.replace(served.url, OURS + "/email")}"' in html and "Confirm my subscription" in html
    # Scanners and previews open links: the page asks, and nothing changes until its button is pressed.
    for _ in range(2):
        page = fetch(link)
        assert_private_page(page, 200)
        assert "<h1>Confirm your subscription</h1>" in page.text and f"<strong>{ANA}</strong>" in page.text
    assert served.status(ANA) == "pending"
    (form,) = Forms(page.text).forms
    done = post_form(link, form["fields"], {"User-Agent": "Signup test/2.0"})  # type: ignore[arg-type]
    assert_private_page(done, 200)
    assert "<h1>You are subscribed</h1>" in done.text
    assert served.status(ANA) == "subscribed"
    (record,) = served.consents(ANA)
    assert (record.method, record.source, record.version) == ("double-opt-in", "web:signup",
                                                              served.workspace.signup.version)
    assert record.text == served.workspace.signup.consent_text
    assert (record.requested_ip, record.requested_user_agent) == ("127.0.0.1", "Signup test/1.0")
    assert (record.confirmed_ip, record.confirmed_user_agent) == ("127.0.0.1", "Signup test/2.0")
    assert record.requested_at is not None and record.confirmed_at is not None
    assert record.requested_at <= record.confirmed_at
    assert served.history(ANA) == [("pending", "web:signup"), ("subscribed", "web:signup-confirm")]
    again = post_form(link, [("confirm", "yes")])
    assert again.status == 200 and "<h1>You are subscribed</h1>" in again.text
    assert "<h1>You are subscribed</h1>" in fetch(link).text
    assert len(served.history(ANA)) == 2 and len(served.mails(1)) == 1


def test_every_address_gets_the_same_answer_and_only_new_or_pending_ones_a_mail(served: Served) -> None:
    with served.store.transaction() as conn:
        add(conn, "sub@example.com", Changes(first_name="Sue"), "cli")
        for status in ("unsubscribed", "bounced", "complained"):
            subscriber, _ = add(conn, f"{status}@example.com", Changes(first_name="Old"), "cli")
            set_status(conn, subscriber, status, "cli")
        add(conn, "erased@example.com", Changes(), "cli")
        erase(conn, "erased@example.com", "cli")
    served.sign_up("pending@example.com")
    served.mails(1)
    before = {email: served.history(email) for email in ("sub@example.com", "bounced@example.com")}
    answers = {}
    for email in ("new@example.com", "pending@example.com", "sub@example.com", "unsubscribed@example.com",
                  "bounced@example.com", "complained@example.com", "erased@example.com"):
        reply = served.sign_up(email, "Mallory", ("sleep",))
        answers[email] = (reply.status, reply.text.replace(email, "ADDRESS"))
    assert len(set(answers.values())) == 1, "the answer tells one address from another"
    mails = served.mails(3)
    assert sorted(r for mail in mails for r in mail.recipients) == ["new@example.com", "pending@example.com",
                                                                   "pending@example.com"]
    assert served.subscriber("sub@example.com") == ("subscribed", "Sue", ())
    for status in ("unsubscribed", "bounced", "complained"):
        assert served.subscriber(f"{status}@example.com") == (status, "Old", ())
    assert served.status("erased@example.com") is None
    assert {email: served.history(email) for email in before} == before
    assert served.subscriber("pending@example.com") == ("pending", "Mallory", ("sleep",))


def test_json_from_an_allowed_site_with_cors_and_its_preflight(served: Served) -> None:
    preflight = fetch(served.form_url, "OPTIONS", headers={
        "Origin": CLINIC_SITE, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status == 204
    assert preflight.headers["access-control-allow-origin"] == CLINIC_SITE
    assert preflight.headers["access-control-allow-methods"] == "POST"
    assert "Content-Type" in preflight.headers["access-control-allow-headers"]
    assert preflight.headers["vary"] == "Origin"
    reply = served.post_json({"email": ANA, "first_name": "Ana", "topic": ["back-pain"]}, {"Origin": CLINIC_SITE})
    assert reply.status == 200 and reply.content_type == "application/json"
    assert reply.json() == {"ok": True, "message": "If this address is not on our list yet, an email with a link "
                                                   "to confirm is on its way."}
    assert reply.headers["access-control-allow-origin"] == CLINIC_SITE
    assert served.subscriber(ANA) == ("pending", "Ana", ("back-pain",))
    assert served.consents(ANA)[0].form_url == CLINIC_SITE
    served.mails(1)
    bad = served.post_json({"email": "nope"}, {"Origin": CLINIC_SITE})
    assert bad.status == 400 and bad.json()["errors"] == {
        "email": "This does not look like an email address. Please check it."}
    # A form from the clinic's site (the snippet) gets the page, not JSON.
    page = served.sign_up("ben@example.com", headers={"Origin": CLINIC_SITE, "Referer": f"{CLINIC_SITE}/news"})
    assert page.status == 200 and "<h1>Check your inbox</h1>" in page.text
    assert served.consents("ben@example.com")[0].form_url == f"{CLINIC_SITE}/news"


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://www.willowcreek-acupuncture.example"])
def test_other_sites_get_no_cors_and_their_posts_change_nothing(served: Served, origin: str) -> None:
    preflight = fetch(served.form_url, "OPTIONS", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status == 403 and "access-control-allow-origin" not in preflight.headers
    referer = {"Referer": f"{origin}/page"} if origin != "null" else {"Origin": origin}
    for reply in (served.post_json({"email": ANA}, {"Origin": origin}), served.sign_up(ANA, headers={"Origin": origin}),
                  served.sign_up(ANA, headers=referer)):
        assert reply.status == 403 and "access-control-allow-origin" not in reply.headers
    page = served.sign_up(ANA, headers={"Origin": origin})
    assert_private_page(page, 403)
    assert "<h1>This form did not come from our page</h1>" in page.text
    assert served.count() == 0 and served.smtp.received == []


@pytest.mark.parametrize("headers", [{}, {"Origin": OURS}, {"Referer": f"{OURS}/email/subscribe"}])
def test_our_own_page_and_clients_without_an_origin_may_post(served: Served, headers: dict[str, str]) -> None:
    assert served.sign_up(ANA, headers=headers).status == 200
    assert served.status(ANA) == "pending"


@pytest.mark.parametrize("email", ["not-an-address", "ana@", "@example.com", "ana@example..com", "a b@example.com",
                                   "ana@example.com\r\nBcc: mallory@evil.example", "x" * 300 + "@example.com", ""])
def test_a_malformed_address_gets_the_form_again_and_no_mail(served: Served, email: str) -> None:
    reply = served.sign_up(email, "Ana", ("sleep",))
    assert_private_page(reply, 400)
    assert '<div class="notice errors" role="alert">' in reply.text
    assert 'aria-invalid="true" aria-describedby="signup-email-error"' in reply.text
    assert 'value="sleep" checked' in reply.text and 'value="Ana"' in reply.text
    assert served.count() == 0
    served.sign_up("ben@example.com")  # the next good one is the first mail
    assert [mail.recipients for mail in served.mails(1)] == [["ben@example.com"]]


def test_line_breaks_in_a_name_cannot_reach_a_header(served: Served) -> None:
    served.sign_up(ANA, "Ana\r\nBcc: mallory@evil.example\r\nSubject: free")
    (mail,) = served.mails(1)
    assert mail.recipients == [ANA]
    assert mail.message["Bcc"] is None and mail.message["Subject"].startswith("Please confirm")
    assert served.subscriber(ANA)[1] == "Ana Bcc: mallory@evil.example Subject: free"
    too_long = served.sign_up("ben@example.com", "B" * 101)
    assert too_long.status == 400 and "Please keep your first name under 100 characters." in too_long.text


def test_huge_bodies_and_bodies_that_are_no_form(served: Served) -> None:
    huge = served.sign_up(ANA, extra="x" * 20_000)
    assert_private_page(huge, 413)
    assert fetch(served.form_url, "POST", b"email=" + b"a" * 100_000, "application/x-www-form-urlencoded",
                 {"Origin": OURS}).status == 413
    assert served.post_json(b"[1, 2]").status == 400
    assert served.post_json(b"{not json").status == 400
    assert served.post_json({"email": {"nested": True}}).status == 400
    assert fetch(served.form_url, "PUT", b"x", "text/plain").status == 405
    assert served.count() == 0 and served.smtp.received == []


def test_a_robot_that_fills_the_hidden_field_is_answered_as_anyone_and_nothing_happens(served: Served) -> None:
    human = served.sign_up("human@example.com")
    robot = served.sign_up("robot@example.com", website="https://spam.example")
    assert robot.status == human.status == 200
    assert robot.text.replace("robot@", "human@") == human.text
    served.mails(1)
    assert served.status("robot@example.com") is None and served.count() == 1


def confirm_token(served: Served, email: str = ANA, age: timedelta = timedelta(0), tokens: Tokens | None = None) -> str:
    with served.store.reading() as conn:
        subscriber = get(conn, email)
    consent_id = served.consents(email)[0].id
    return ConfirmLinks(tokens or served.tokens).make(subscriber.id, consent_id, email, utcnow() - age)


def test_expired_tampered_and_foreign_links_get_clear_pages_and_subscribe_nobody(served: Served) -> None:
    served.sign_up(ANA)
    good = served.link(served.mails(1)[0]).rsplit("/", 1)[1]
    cases = {
        "tampered": (good[:-2] + ("AA" if not good.endswith("AA") else "BB"), 400, "This link is not valid"),
        "garbage": ("not-a-token", 400, "This link is not valid"),
        "other secret": (confirm_token(served, tokens=Tokens("another secret " * 3)), 400, "This link is not valid"),
        "expired": (confirm_token(served, age=timedelta(days=7, minutes=1)), 410, "This link has expired"),
        "from the future": (confirm_token(served, age=-timedelta(days=1)), 410, "This link has expired"),
    }
    for token, status, title in cases.values():
        url = f"{served.url}/subscribe/confirm/{token}"
        for reply in (fetch(url), post_form(url, [("confirm", "yes")])):
            assert_private_page(reply, status)
            assert f"<h1>{title}</h1>" in reply.text and '<a href="../../subscribe">Sign up again</a>' in reply.text
            assert ANA not in reply.text
    assert served.status(ANA) == "pending"
    # Almost a week old still works.
    week = f"{served.url}/subscribe/confirm/{confirm_token(served, age=timedelta(days=6, hours=23))}"
    assert post_form(week, [("confirm", "yes")]).status == 200 and served.status(ANA) == "subscribed"


def test_the_confirm_button_must_come_from_our_page(served: Served) -> None:
    served.sign_up(ANA)
    link = served.link(served.mails(1)[0])
    refused = post_form(link, [("confirm", "yes")], {"Origin": "https://evil.example"})
    assert_private_page(refused, 403)
    assert served.status(ANA) == "pending"
    assert post_form(link, [("confirm", "yes")], {"Origin": served.url}).status == 200
    assert served.status(ANA) == "subscribed"


def test_a_link_of_someone_who_left_or_was_purged_confirms_nothing(served: Served) -> None:
    served.sign_up(ANA)
    served.sign_up("ben@example.com")
    ana, ben = (served.link(mail) for mail in sorted(served.mails(2), key=lambda m: m.recipients[0]))
    with served.store.transaction() as conn:
        erase(conn, ANA, "cli")
        subscriber = find(conn, "ben@example.com")
        assert subscriber is not None
        set_status(conn, subscriber, "unsubscribed", "cli")
    for link in (ana, ben):
        for reply in (fetch(link), post_form(link, [("confirm", "yes")])):
            assert_private_page(reply, 400)
            assert "<h1>This link is not valid</h1>" in reply.text
    assert served.status("ben@example.com") == "unsubscribed" and served.status(ANA) is None


def test_without_a_signup_section_there_is_no_form(workspace_dir: Path, store: Store,
                                                  smtp_server: SmtpTestServer) -> None:
    config = workspace_dir / "campaign.toml"
    text = config.read_text()
    start, end = text.index("[signup]"), text.index("[bounces]")
    config.write_text(text[:start] + text[end:])
    with serving(load_workspace(workspace_dir), store, smtp_server) as site:
        assert fetch(site.form_url).status == 404
        assert site.sign_up(ANA).status == 404
        assert fetch(f"{site.url}/subscribe/confirm/x").status == 404


def test_missing_confirmation_templates_stop_the_server_from_starting(workspace_dir: Path, store: Store) -> None:
    (workspace_dir / "templates" / "confirm.mjml.j2").unlink()
    with pytest.raises(NotFoundError, match=r"no template 'confirm.mjml.j2'"):
        create_app(load_workspace(workspace_dir), store, Tokens(SECRET))


def test_a_transport_that_refuses_leaves_the_signup_pending_and_says_nothing_else(
        workspace_dir: Path, store: Store, smtp_server: SmtpTestServer) -> None:
    smtp_server.behaviour.rcpt_replies[ANA] = "550 5.1.1 No such mailbox"
    with serving(load_workspace(workspace_dir), store, smtp_server) as site:
        reply = site.sign_up(ANA)
        assert reply.status == 200 and "<h1>Check your inbox</h1>" in reply.text
        assert site.sign_up("ben@example.com").status == 200
        assert [m.recipients for m in site.mails(1)] == [["ben@example.com"]]
        assert site.status(ANA) == "pending"


def test_the_workspace_transport_is_the_default(workspace_dir: Path, store: Store, monkeypatch: pytest.MonkeyPatch,
                                                smtp_server: SmtpTestServer) -> None:
    """Without a transport given, serve mails through CAMPAIGN_TRANSPORT, else maildir:outbox."""
    with running(create_app(load_workspace(workspace_dir), store, Tokens(SECRET))) as url:
        post_form(f"{url}/subscribe", [("email", ANA)])
        outbox = workspace_dir / "outbox" / "new"
        (path,) = wait_for(lambda: list(outbox.glob("*")) if outbox.is_dir() else [], "the Maildir")
        assert b"To: ana@example.com" in path.read_bytes()
    monkeypatch.setenv("CAMPAIGN_TRANSPORT", smtp_server.url)
    with running(create_app(load_workspace(workspace_dir), store, Tokens(SECRET))) as url:
        post_form(f"{url}/subscribe", [("email", "ben@example.com")])
        wait_for(lambda: smtp_server.received, "the SMTP server")
    assert [r.recipients for r in smtp_server.received] == [["ben@example.com"]]
