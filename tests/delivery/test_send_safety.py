"""Exactly-once under stress: SIGKILL at random moments, two senders at once, Ctrl-C, DKIM."""

from __future__ import annotations

import base64
import random
import signal
import subprocess
import sys
import time

import dkim
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline.db.engine import Store
from pipeline.db.schema import deliveries, subscribers
from tests.cli.test_sending import people
from tests.conftest import Campaign, edit
from tests.smtp_server import SmtpTestServer

RECIPIENTS = 40


def start_send(campaign: Campaign, server: SmtpTestServer, *args: str) -> subprocess.Popen[str]:
    db = ["--db", campaign.db_url] if campaign.db_url else []
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--workspace", str(campaign.root), *db, "--transport", server.url,
         "send", "back-pain", "--yes", "--concurrency", "2", "--retry-after", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def states(campaign: Campaign) -> dict[str, str]:
    store = Store(campaign.db_url or f"sqlite:///{campaign.root / 'campaign.db'}")
    with store.reading() as conn:
        rows = conn.execute(sa.select(subscribers.c.email_key, deliveries.c.state).select_from(
            deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id))).all()
    store.close()
    return {email: state for email, state in rows}


def finish(campaign: Campaign, server: SmtpTestServer) -> None:
    """Run sends until nothing is queued; the unknown ones stay unknown."""
    for _ in range(5):
        process = start_send(campaign, server)
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        if "queued" not in states(campaign).values():
            return
    raise AssertionError("deliveries still queued after five runs")


def assert_exactly_once(campaign: Campaign, server: SmtpTestServer, addresses: list[str]) -> int:
    """Every address got one message, except unknown ones, which got at most one. Returns unknowns."""
    got = server.recipients()
    by_address = states(campaign)
    assert set(by_address) == set(addresses)
    unknown = [a for a, s in by_address.items() if s == "unknown"]
    for address in addresses:
        if by_address[address] == "unknown":
            assert got[address] <= 1, f"{address} got {got[address]} copies"
        else:
            assert by_address[address] == "sent", (address, by_address[address])
            assert got[address] == 1, f"{address} got {got[address]} copies"
    return len(unknown)


@pytest.mark.parametrize("trial", range(6))
def test_sigkill_at_random_moments_then_rerun(campaign: Campaign, smtp_server: SmtpTestServer, trial: int) -> None:
    addresses = people(campaign, RECIPIENTS)
    smtp_server.behaviour.delay = 0.01  # about a second of sending to kill somewhere inside
    process = start_send(campaign, smtp_server)
    rng = random.Random(trial)
    deadline = time.monotonic() + rng.uniform(0.4, 1.6)
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    killed_during = dict(smtp_server.recipients())
    finish(campaign, smtp_server)
    unknown = assert_exactly_once(campaign, smtp_server, addresses)
    assert unknown <= 2  # at most the message each of the two workers was sending when killed
    assert sum(killed_during.values()) <= RECIPIENTS


def test_two_senders_started_together_never_double_send(audience: Campaign, smtp_server: SmtpTestServer) -> None:
    addresses = people(audience, RECIPIENTS)
    smtp_server.behaviour.delay = 0.005
    first, second = start_send(audience, smtp_server), start_send(audience, smtp_server)
    for process in (first, second):
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    finish(audience, smtp_server)
    assert assert_exactly_once(audience, smtp_server, addresses) == 0


def test_ctrl_c_stops_after_the_message_in_flight(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    addresses = people(campaign, RECIPIENTS)
    smtp_server.behaviour.delay = 0.02
    process = start_send(campaign, smtp_server)
    while sum(smtp_server.recipients().values()) < 3:
        assert process.poll() is None
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "campaign: stopped: 'campaign send back-pain' continues where this run stopped" in err
    left = states(campaign)
    assert "unknown" not in left.values() and "sending" not in left.values()
    assert 3 <= list(left.values()).count("sent") < RECIPIENTS
    finish(campaign, smtp_server)
    assert assert_exactly_once(campaign, smtp_server, addresses) == 0


def test_pause_and_resume_never_duplicate(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    addresses = people(campaign, RECIPIENTS)
    smtp_server.behaviour.delay = 0.02
    process = start_send(campaign, smtp_server)
    while sum(smtp_server.recipients().values()) < 3:
        time.sleep(0.01)
    assert campaign("pause", "back-pain").stdout == "back-pain\tpaused\n"
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0 and "back-pain is paused; 'campaign resume back-pain' continues it." in err
    assert "unknown" not in states(campaign).values()
    refused = campaign("--transport", smtp_server.url, "send", "back-pain", "--yes")
    assert refused.stderr == "campaign: error: back-pain is paused; 'campaign resume back-pain' first\n"
    assert campaign("resume", "back-pain").stdout == "back-pain\tsending\n"
    finish(campaign, smtp_server)
    assert assert_exactly_once(campaign, smtp_server, addresses) == 0


def test_dkim_signature_verifies(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    folder = campaign.root / "dkim"
    folder.mkdir()
    (folder / "news.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    edit(campaign.root / "campaign.toml", '# dkim_selector = "news2026"\n# dkim_key = "dkim/news2026.pem"',
         'dkim_selector = "news"\ndkim_key = "dkim/news.pem"')
    people(campaign, 3)
    assert campaign("--transport", smtp_server.url, "send", "back-pain", "--yes").exit_code == 0

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"news._domainkey.willowcreek-acupuncture.example."
        return record

    for received in smtp_server.received:
        signature = received.message["DKIM-Signature"]
        for header in ("from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"):
            assert header in signature.replace(" ", "").lower().split("h=")[1].split(";")[0].split(":")
        assert dkim.verify(received.data, dnsfunc=dns)
        tampered = received.data.replace(b"Subject: Can", b"Subject: Cant", 1)
        assert not dkim.verify(tampered, dnsfunc=dns)
