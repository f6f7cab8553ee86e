"""Verified TLS to servers whose certificate the system does not know: ?cafile=, ?servername=,
$CAMPAIGN_SMTP_CAFILE, with STARTTLS and with implicit TLS (smtps), against real aiosmtpd servers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.delivery.transports import open_transport
from pipeline.errors import TransportError
from tests.conftest import Campaign
from tests.smtp_server import SmtpTestServer
from tests.tls_server import (
    SERVER_NAME,
    Authority,
    Certificate,
    make_authority,
    make_self_signed,
)

MESSAGE = b"From: news@clinic.example\r\nTo: ana@example.com\r\nSubject: Back pain\r\n\r\nHello Ana.\r\n"
UNTRUSTED_HINT = "trust the server's certificate or its CA with ?cafile=PATH or $CAMPAIGN_SMTP_CAFILE"
NAME_HINT = "if the certificate is for the server's host name, give that name as ?servername=NAME"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def snakeoil(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_self_signed(tmp_path_factory.mktemp("snakeoil"))


@pytest.fixture(autouse=True)
def no_cafile_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMPAIGN_SMTP_CAFILE", raising=False)
    monkeypatch.delenv("CAMPAIGN_SMTP_PASSWORD", raising=False)


def serve(certificate: Certificate, implicit_tls: bool, logins: dict[str, str] | None = None) -> SmtpTestServer:
    return SmtpTestServer(tls=certificate.server_context(), implicit_tls=implicit_tls, logins=logins).start()


@pytest.fixture(params=["starttls", "smtps"])
def server(request: pytest.FixtureRequest, authority: Authority) -> Iterator[SmtpTestServer]:
    """A server with a certificate for mail.clinic.example signed by the test CA, on 127.0.0.1."""
    started = serve(authority.server, implicit_tls=request.param == "smtps")
    yield started
    started.stop()


def send_one(url: str, root: Path) -> str:
    _, connect = open_transport(url, root)
    connection = connect()
    try:
        return connection.send("news@clinic.example", "ana@example.com", MESSAGE)
    finally:
        connection.close()


def failure(url: str, root: Path) -> str:
    with pytest.raises(TransportError) as caught:
        send_one(url, root)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_certificate_nobody_vouches_for_is_a_one_line_error(server: SmtpTestServer, tmp_path: Path) -> None:
    assert failure(server.url, tmp_path) == (f"cannot connect to {server.url}: certificate verify failed: unable to "
                                             f"get local issuer certificate; {UNTRUSTED_HINT}")
    assert server.received == []


def test_the_ca_alone_does_not_make_127_0_0_1_the_certificates_name(server: SmtpTestServer, authority: Authority,
                                                                      tmp_path: Path) -> None:
    assert failure(f"{server.url}?cafile={authority.ca}", tmp_path) == (
        f"cannot connect to {server.url}: certificate verify failed: IP address mismatch, certificate is not valid "
        f"for '127.0.0.1'; {NAME_HINT}")
    assert server.received == []


def test_the_ca_and_the_certificates_name_deliver(server: SmtpTestServer, authority: Authority,
                                                   tmp_path: Path) -> None:
    url = f"{server.url}?cafile={authority.ca}&servername={SERVER_NAME}"
    assert send_one(url, tmp_path) == "250 2.0.0 Message accepted"
    assert [(r.recipients, r.message["Subject"]) for r in server.received] == [(["ana@example.com"], "Back pain")]
    # Options may come in any order; the description stays the server's address.
    assert open_transport(f"{server.url}?servername={SERVER_NAME}&cafile={authority.ca}", tmp_path)[0] == server.url


def test_a_servername_the_certificate_does_not_hold_is_a_mismatch(server: SmtpTestServer, authority: Authority,
                                                                  tmp_path: Path) -> None:
    assert failure(f"{server.url}?cafile={authority.ca}&servername=other.example", tmp_path) == (
        f"cannot connect to {server.url}: certificate verify failed: Hostname mismatch, certificate is not valid "
        "for 'other.example'; ?servername=other.example must be a name the certificate holds")


def test_the_cafile_may_come_from_the_environment(server: SmtpTestServer, authority: Authority, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_SMTP_CAFILE", str(authority.ca))
    assert send_one(f"{server.url}?servername={SERVER_NAME}", tmp_path) == "250 2.0.0 Message accepted"
    assert failure(server.url, tmp_path) == (
        f"cannot connect to {server.url}: certificate verify failed: IP address mismatch, certificate is not valid "
        f"for '127.0.0.1'; {NAME_HINT}")


def test_the_urls_cafile_wins_over_the_environment(server: SmtpTestServer, authority: Authority, snakeoil: Certificate,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_SMTP_CAFILE", str(tmp_path / "missing.pem"))
    url = f"{server.url}?cafile={authority.ca}&servername={SERVER_NAME}"
    assert send_one(url, tmp_path) == "250 2.0.0 Message accepted"
    # A file that vouches for something else: the message names it and where it was named.
    monkeypatch.setenv("CAMPAIGN_SMTP_CAFILE", str(snakeoil.cert))
    assert failure(f"{server.url}?servername={SERVER_NAME}", tmp_path) == (
        f"cannot connect to {server.url}: certificate verify failed: unable to get local issuer certificate; "
        f"{snakeoil.cert} (from $CAMPAIGN_SMTP_CAFILE) does not vouch for it")


def test_a_relative_cafile_is_in_the_workspace(server: SmtpTestServer, authority: Authority, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = tmp_path / "clinic"
    (workspace / "certs").mkdir(parents=True)
    shutil.copy(authority.ca, workspace / "certs" / "clinic-ca.pem")
    monkeypatch.chdir(tmp_path)  # not the workspace: the path must not depend on where campaign runs
    assert send_one(f"{server.url}?cafile=certs/clinic-ca.pem&servername={SERVER_NAME}", workspace) == (
        "250 2.0.0 Message accepted")
    monkeypatch.setenv("CAMPAIGN_SMTP_CAFILE", "certs/clinic-ca.pem")
    assert send_one(f"{server.url}?servername={SERVER_NAME}", workspace) == "250 2.0.0 Message accepted"


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["starttls", "smtps"])
def test_a_self_signed_certificate_like_postfixs_snakeoil(snakeoil: Certificate, implicit_tls: bool,
                                                          tmp_path: Path) -> None:
    server = serve(snakeoil, implicit_tls)
    try:
        assert failure(server.url, tmp_path) == (
            f"cannot connect to {server.url}: certificate verify failed: self-signed certificate; {UNTRUSTED_HINT}")
        url = f"{server.url}?cafile={snakeoil.cert}&servername={SERVER_NAME}"
        assert send_one(url, tmp_path) == "250 2.0.0 Message accepted"
        assert len(server.received) == 1
    finally:
        server.stop()


def test_a_login_goes_over_the_verified_connection(authority: Authority, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(authority.server, implicit_tls=False, logins={"news@clinic.example": "Hunter2"})
    try:
        monkeypatch.setenv("CAMPAIGN_SMTP_PASSWORD", "Hunter2")
        url = f"smtp://news@clinic.example@127.0.0.1:{server.port}?cafile={authority.ca}&servername={SERVER_NAME}"
        description, _ = open_transport(url, tmp_path)
        assert description == f"smtp://news%40clinic.example@127.0.0.1:{server.port}"
        assert send_one(url, tmp_path) == "250 2.0.0 Message accepted"
        assert server.logged_in == ["news@clinic.example"]
        monkeypatch.setenv("CAMPAIGN_SMTP_PASSWORD", "wrong")
        message = failure(url, tmp_path)
        assert message.startswith(f"{description} refused the login: 535 ") and "wrong" not in message
    finally:
        server.stop()


def test_asking_for_tls_on_loopback_refuses_a_server_without_starttls(smtp_server: SmtpTestServer,
                                                                      authority: Authority, tmp_path: Path) -> None:
    # Without options, loopback may go in the clear (a local relay); ?cafile= or ?servername= ask for TLS.
    assert send_one(smtp_server.url, tmp_path) == "250 2.0.0 Message accepted"
    for option in (f"cafile={authority.ca}", f"servername={SERVER_NAME}"):
        assert failure(f"{smtp_server.url}?{option}", tmp_path) == (
            f"{smtp_server.url} does not offer STARTTLS, which ?cafile= or ?servername= ask for; refusing to send "
            "in the clear")
    assert len(smtp_server.received) == 1


def test_a_cafile_that_cannot_be_used_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(TransportError) as caught:
        open_transport(f"smtp://127.0.0.1:25?cafile={missing}", tmp_path)
    assert str(caught.value) == f"{missing}: cannot read the certificates named by ?cafile= (No such file or directory)"
    monkeypatch.setenv("CAMPAIGN_SMTP_CAFILE", "missing.pem")
    with pytest.raises(TransportError) as caught:
        open_transport("smtps://mail.clinic.example", tmp_path)
    assert str(caught.value) == (f"{missing}: cannot read the certificates named by $CAMPAIGN_SMTP_CAFILE (No such "
                                 "file or directory)")
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(TransportError) as caught:
        open_transport(f"smtp://127.0.0.1:25?cafile={not_pem}", tmp_path)
    assert str(caught.value) == f"{not_pem}: the file named by ?cafile= holds no PEM certificate to trust"


@pytest.mark.parametrize(("query", "message"), [
    ("cafle=ca.pem", "unknown option 'cafle' in the transport URL; the options are ?cafile=PATH and ?servername=NAME"),
    ("verify=no", "unknown option 'verify' in the transport URL; the options are ?cafile=PATH and ?servername=NAME"),
    ("cafile=a.pem&cafile=b.pem", "?cafile= is given twice in the transport URL"),
    ("cafile=", "?cafile= needs a value: ?cafile=PATH"),
    ("servername", "?servername= needs a value: ?servername=NAME"),
    ("servername=.clinic.example", ("?servername=.clinic.example is not a host name (it should be the name in "
                                    "the server's certificate)")),
])
def test_bad_options_are_named(query: str, message: str, tmp_path: Path) -> None:
    for scheme in ("smtp", "smtps"):
        with pytest.raises(TransportError) as caught:
            open_transport(f"{scheme}://127.0.0.1:25?{query}", tmp_path)
        assert str(caught.value) == message


def test_the_command_line_shows_a_bad_certificate_in_one_line(campaign: Campaign, authority: Authority) -> None:
    server = serve(authority.server, implicit_tls=False)
    try:
        refused = campaign("--transport", server.url, "test-send", "back-pain", "--to", "me@clinic.example")
        assert (refused.exit_code, refused.stderr) == (
            1, (f"campaign: error: cannot connect to {server.url}: certificate verify failed: unable to get "
                f"local issuer certificate; {UNTRUSTED_HINT}\n"))
        url = f"{server.url}?cafile={authority.ca}&servername={SERVER_NAME}"
        sent = campaign("--transport", url, "test-send", "back-pain", "--to", "me@clinic.example")
        assert (sent.exit_code, sent.stdout) == (0, "me@clinic.example\t250 2.0.0 Message accepted\n")
        assert sent.stderr.endswith(f"via {server.url}.\n")
        assert [r.recipients for r in server.received] == [["me@clinic.example"]]
    finally:
        server.stop()


def test_a_send_runs_several_tls_connections_in_one_thread(campaign: Campaign, server: SmtpTestServer,
                                                           authority: Authority) -> None:
    from tests.cli.test_sending import people

    # Messages of tens of kilobytes on four TLS sessions at once: writes that TLS cannot take in one
    # go and replies that come while other sessions are being written to.
    addresses = people(campaign, 40)
    url = f"{server.url}?cafile={authority.ca}&servername={SERVER_NAME}"
    sent = campaign("--transport", url, "send", "back-pain", "--yes", "--concurrency", "4")
    assert (sent.exit_code, sent.stderr.splitlines()[-1:]) == (0, [f"back-pain is sent, via {server.url}."]), sent.stderr
    assert sorted(r.recipients[0] for r in server.received) == sorted(addresses)
    assert all(r.message["Subject"] for r in server.received)
