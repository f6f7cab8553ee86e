"""Transport URLs: how they are read, how they are described in messages, and what never shows."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from pipeline.delivery.transports import (
    PermanentFailure,
    TemporaryFailure,
    open_transport,
    smtp,
)
from pipeline.delivery.transports.smtp import SmtpSettings
from pipeline.errors import TransportError
from tests.conftest import Campaign
from tests.smtp_server import SmtpTestServer

PASSWORD = "Hunter2"


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_SMTP_PASSWORD", PASSWORD)
    monkeypatch.delenv("CAMPAIGN_SMTP_CAFILE", raising=False)


def transport_error(url: str, root: Path) -> str:
    with pytest.raises(TransportError) as caught:
        open_transport(url, root)
    return str(caught.value)


@pytest.mark.parametrize(("url", "description"), [
    ("smtp://mail.clinic.example", "smtp://mail.clinic.example:587"),
    ("smtps://mail.clinic.example", "smtps://mail.clinic.example:465"),
    ("SMTP://Mail.Clinic.Example:25", "smtp://mail.clinic.example:25"),
    ("smtp://news@mail.clinic.example", "smtp://news@mail.clinic.example:587"),
    # A user name that is an address: "@" encoded, so the description reads back as the same URL.
    ("smtp://news@clinic.example@127.0.0.1:587", "smtp://news%40clinic.example@127.0.0.1:587"),
    ("smtp://news%40clinic.example@127.0.0.1:587", "smtp://news%40clinic.example@127.0.0.1:587"),
    ("smtp://a%3Ab%25c@127.0.0.1", "smtp://a%3Ab%25c@127.0.0.1:587"),
    ("smtp://news+list@127.0.0.1", "smtp://news+list@127.0.0.1:587"),
    ("smtp://[::1]:25", "smtp://[::1]:25"),
    ("smtps://news@clinic.example@[2001:db8::25]", "smtps://news%40clinic.example@[2001:db8::25]:465"),
    ("smtp://[fe80::1%25eth0]:25", "smtp://[fe80::1%25eth0]:25"),
])
def test_the_description_is_an_unambiguous_url_without_the_password(url: str, description: str,
                                                                     tmp_path: Path) -> None:
    assert open_transport(url, tmp_path)[0] == description
    settings = SmtpSettings.from_url(url, tmp_path)
    assert PASSWORD not in description and PASSWORD not in repr(settings)


def test_the_description_reads_back_as_the_same_server(tmp_path: Path) -> None:
    settings = SmtpSettings.from_url("smtps://news@clinic.example@[2001:db8::25]:2465", tmp_path)
    again = SmtpSettings.from_url(settings.describe(), tmp_path)
    assert (again.host, again.port, again.user, again.implicit_tls) == (
        "2001:db8::25", 2465, "news@clinic.example", True)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_an_ipv6_address_in_brackets_connects(tmp_path: Path) -> None:
    server = SmtpTestServer(host="::1").start()
    try:
        description, connect = open_transport(f"smtp://[::1]:{server.port}", tmp_path)
        assert description == server.url == f"smtp://[::1]:{server.port}"
        connection = connect()
        try:
            assert connection.send("news@clinic.example", "ana@example.com", b"Subject: hi\r\n\r\nHi.\r\n") == (
                "250 2.0.0 Message accepted")
        finally:
            connection.close()
        assert [r.recipients for r in server.received] == [["ana@example.com"]]
    finally:
        server.stop()


def test_an_ipv6_address_without_brackets_says_how_to_write_it(tmp_path: Path) -> None:
    assert transport_error("smtp://::1:25", tmp_path) == "an IPv6 address goes in brackets, like smtp://[::1]:25"
    assert transport_error("smtps://news@2001:db8::25", tmp_path) == (
        "an IPv6 address goes in brackets, like smtps://[::1]:25")


@pytest.mark.parametrize(("url", "message"), [
    ("smtp+tls://newsuser:Hunter2@127.0.0.1", ("unknown transport 'smtp+tls://newsuser:***@127.0.0.1': use "
                                              "maildir:PATH, smtp://host[:port] or smtps://host[:port]")),
    ("smtp://newsuser:Hunter2@127.0.0.1", "put the SMTP password in $CAMPAIGN_SMTP_PASSWORD, not in the URL"),
    ("smtp://newsuser:Hunter2@[::1", "bad transport URL 'smtp://newsuser:***@[::1': Invalid IPv6 URL"),
    ("smtp://newsuser:Hunter2@[mail]:25", ("bad transport URL 'smtp://newsuser:***@[mail]:25': 'mail' does not "
                                           "appear to be an IPv4 or IPv6 address")),
    ("smtp://127.0.0.1:twentyfive", "bad port in 'smtp://127.0.0.1:twentyfive'"),
])
def test_a_password_typed_into_a_url_never_shows_in_the_error(url: str, message: str, tmp_path: Path) -> None:
    assert transport_error(url, tmp_path) == message


def test_a_user_without_a_password_is_told_where_it_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMPAIGN_SMTP_PASSWORD")
    assert transport_error("smtp://news@clinic.example@127.0.0.1", tmp_path) == (
        "smtp://news@clinic.example@127.0.0.1 names a user; set the password in $CAMPAIGN_SMTP_PASSWORD")


def test_the_date_header_is_in_numeric_utc(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    # RFC 5322 4.3: "GMT" is an obsolete zone name; "-0000" would mean the zone is unknown.
    result = campaign("--transport", smtp_server.url, "test-send", "back-pain", "--to", "me@clinic.example")
    assert result.exit_code == 0, result.stderr
    header = smtp_server.received[0].data.split(b"\r\n\r\n", 1)[0]
    assert re.search(rb"(?m)^Date: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000\r$", header), header
    assert smtp_server.received[0].message["Date"].datetime.utcoffset().total_seconds() == 0


MESSAGE = b"From: news@clinic.example\r\nTo: ana@example.com\r\nSubject: Back pain\r\n\r\nHello Ana.\r\n"


def test_a_reset_left_unanswered_ends_the_session_so_no_late_reply_is_misread(
        smtp_server: SmtpTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smtp, "TIMEOUT", 0.3)
    smtp_server.behaviour.rcpt_replies["gone@example.com"] = "550 5.1.1 No such user"
    smtp_server.behaviour.rset_delay = 0.6  # its 250 would come as the answer to the next MAIL
    _, connect = open_transport(smtp_server.url, tmp_path)
    connection = connect()
    try:
        with pytest.raises(PermanentFailure) as refused:
            connection.send("news@clinic.example", "gone@example.com", MESSAGE)
        with pytest.raises(TemporaryFailure) as lost:
            connection.send("news@clinic.example", "ana@example.com", MESSAGE)
    finally:
        connection.close()
    assert (refused.value.reply, refused.value.bounce) == ("550 5.1.1 No such user", True)
    assert (lost.value.reply, lost.value.reconnect) == (
        "connection lost: the session was closed when RSET got no answer (timed out)", True)
    smtp_server.behaviour.rset_delay = 0
    fresh = connect()
    try:
        assert fresh.send("news@clinic.example", "ana@example.com", MESSAGE) == "250 2.0.0 Message accepted"
    finally:
        fresh.close()
    assert [r.recipients for r in smtp_server.received] == [["ana@example.com"]]
