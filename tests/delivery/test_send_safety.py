"""Exactly-once under stress: SIGKILL in the middle of a send and of overlapping send-due runs,
two senders at once, Ctrl-C, pause and resume, DKIM."""

from __future__ import annotations

import base64
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager

import dkim
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline.db.engine import Store
from pipeline.db.schema import deliveries, subscribers
from pipeline.delivery.loop import CLAIM_BATCH
from tests.cli.test_sending import people
from tests.conftest import Campaign, edit
from tests.smtp_server import SmtpTestServer

RECIPIENTS = 40
CONCURRENCY = 2  # start_send's workers, so at most two messages are in flight when a send dies


def start_send(campaign: Campaign, server: SmtpTestServer, *args: str) -> subprocess.Popen[str]:
    db = ["--db", campaign.db_url] if campaign.db_url else []
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--workspace", str(campaign.root), *db, "--transport", server.url,
         "send", "back-pain", "--yes", "--concurrency", str(CONCURRENCY), "--retry-after", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


NOW = "2026-11-23T12:00:00Z"  # as in tests/cli/test_schedule.py: a schedule made now ...
DUE = "2026-12-01T17:00:00Z"  # ... for 2026-12-01 09:00 in campaign.toml's zone falls due here


def start_send_due(campaign: Campaign, server: SmtpTestServer) -> subprocess.Popen[str]:
    db = ["--db", campaign.db_url] if campaign.db_url else []
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--workspace", str(campaign.root), *db, "--transport", server.url,
         "send-due", "--now", DUE],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def open_store(campaign: Campaign) -> Store:
    return Store(campaign.db_url or f"sqlite:///{campaign.root / 'campaign.db'}")


def states(campaign: Campaign) -> dict[str, str]:
    store = open_store(campaign)
    with store.reading() as conn:
        rows = conn.execute(sa.select(subscribers.c.email_key, deliveries.c.state).select_from(
            deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id))).all()
    store.close()
    return {email: state for email, state in rows}


def finish(campaign: Campaign, server: SmtpTestServer,
           start: Callable[[Campaign, SmtpTestServer], subprocess.Popen[str]] = start_send) -> None:
    """Run sends (or `start`'s command) until nothing is queued; the unknown ones stay unknown."""
    for _ in range(5):
        process = start(campaign, server)
        _, err = process.communicate(timeout=120)
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


# --- SIGKILL in the middle of sending ------------------------------------------------------------
# Each kill waits for deliveries the sink has seen, so it lands mid-send by construction, and each
# trial checks that it did: a kill before the first message or after the last tests nothing.
KILL_TRIALS = 10
KILL_RECIPIENTS = 2 * CLAIM_BATCH  # a claim batch per worker: both have a message in flight all along
KILL_DELAY = 0.003  # the sink's pause before RCPT and DATA: 5 ms between deliveries, half a second in all
DUE_TRIALS = 2  # one run killed, then two
DUE_PROCESSES = 3
DUE_RECIPIENTS = DUE_PROCESSES * CLAIM_BATCH  # the runs send with one worker each: a batch per run


def delivered(server: SmtpTestServer) -> int:
    return sum(server.recipients().values())


def kill_point(trial: int) -> int:
    """How many deliveries trial `trial` waits for before its kill. The trials split 1 .. KILL_RECIPIENTS-2
    into stretches and each takes a random point of its own; the first kills right after the first
    delivery, the last with two messages to go."""
    span = KILL_RECIPIENTS - 2
    low, high = 1 + trial * span // KILL_TRIALS, (trial + 1) * span // KILL_TRIALS
    if trial == 0:
        return low
    if trial == KILL_TRIALS - 1:
        return high
    return random.Random(trial).randint(low, high)


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL a running process and check the kill, not its own end, stopped it."""
    assert process.poll() is None, "the process ended before the kill: this trial tests nothing"
    process.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, f"the process ended before the kill landed: {err}"


@contextmanager
def reaped(*processes: subprocess.Popen[str]) -> Iterator[None]:
    """Kill what still runs of `processes` when the block ends, so a failed trial leaves none behind."""
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()


def holdings(store: Store) -> dict[int, Counter[str]]:
    """Per sending process, how many of the rows it claimed are in each state (a worker is
    host:pid:run:n, and keeps its name on the rows it sent)."""
    with store.reading() as conn:
        rows = conn.execute(sa.select(deliveries.c.worker, deliveries.c.state).where(
            deliveries.c.worker.is_not(None))).all()
    held: dict[int, Counter[str]] = {}
    for worker, state in rows:
        held.setdefault(int(worker.split(":")[1]), Counter())[state] += 1
    return held


@pytest.mark.parametrize("trial", range(KILL_TRIALS))
def test_sigkill_mid_send_then_rerun(audience: Campaign, smtp_server: SmtpTestServer, trial: int) -> None:
    """A send dies after kill_point(trial) deliveries; reruns finish it, and only what its two
    workers had in flight is unknown."""
    addresses = people(audience, KILL_RECIPIENTS)
    smtp_server.behaviour.delay = KILL_DELAY
    wanted = kill_point(trial)
    process = start_send(audience, smtp_server)
    deadline = time.monotonic() + 60
    with reaped(process):
        while (seen := delivered(smtp_server)) < wanted:
            assert process.poll() is None, f"the send ended after {seen} of {wanted} deliveries, before its kill"
            assert time.monotonic() < deadline, f"{seen} deliveries in 60 s, waiting for {wanted}"
            time.sleep(0.001)
        kill(process)
    left = list(states(audience).values())
    assert {"queued", "sending"} & set(left), "the send had finished when the kill landed"
    in_flight = left.count("sending")  # sent or not: the dead sender never heard, or never wrote it down
    assert in_flight <= CONCURRENCY
    finish(audience, smtp_server)
    assert assert_exactly_once(audience, smtp_server, addresses) == in_flight


@pytest.mark.parametrize("trial", range(DUE_TRIALS))
def test_sigkill_overlapping_send_due_then_rerun(audience: Campaign, smtp_server: SmtpTestServer, trial: int) -> None:
    """Three send-due runs share a scheduled campaign; one or two die mid-send; later runs, started
    while the others still send (as cron would), take over the dead runs' rows and finish it."""
    edit(audience.root / "campaign.toml", "concurrency = 4", "concurrency = 1")  # the runs share rows
    addresses = people(audience, DUE_RECIPIENTS)
    assert audience("schedule", "back-pain", "--at", "2026-12-01 09:00", "--now", NOW).exit_code == 0
    smtp_server.behaviour.delay = KILL_DELAY
    victims = 1 + trial % 2
    wanted = random.Random(trial).randint(1, CLAIM_BATCH // 2)
    runs = {run.pid: run for run in (start_send_due(audience, smtp_server) for _ in range(DUE_PROCESSES))}
    deadline = time.monotonic() + 60
    with reaped(*runs.values()), closing(open_store(audience)) as store:
        while True:
            seen = delivered(smtp_server)
            held = holdings(store)
            running = [pid for pid, run in runs.items() if run.poll() is None]
            # Mid-send: it has sent (a row is marked sent only after its 250) and has rows to go.
            mid_send = [pid for pid in running if held.get(pid, Counter())["sent"] and held[pid]["queued"]]
            # Every run still going has claimed rows, so none is yet to recover a dead one's rows.
            if seen >= wanted and len(mid_send) >= victims and all(pid in held for pid in running):
                break
            assert len(running) >= victims, f"only {len(running)} runs left after {seen} deliveries, before a kill"
            assert time.monotonic() < deadline, f"no {victims} runs mid-send: {held}, running {running}"
            time.sleep(0.01)
        killed = mid_send[:victims]
        for pid in killed:
            kill(runs[pid])
        after = holdings(store)
        in_flight = 0
        for pid in killed:
            assert after[pid]["queued"] + after[pid]["sending"] > 0, "a killed run had finished its rows"
            assert after[pid]["sending"] <= 1  # one worker: one message in flight
            in_flight += after[pid]["sending"]
        edit(audience.root / "campaign.toml", "concurrency = 1", "concurrency = 4")
        finish(audience, smtp_server, start_send_due)
        for pid, run in runs.items():
            if pid not in killed:
                _, err = run.communicate(timeout=120)
                assert run.returncode == 0, err
    assert assert_exactly_once(audience, smtp_server, addresses) == in_flight


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
    deadline = time.monotonic() + 60
    while sum(smtp_server.recipients().values()) < 3:
        assert process.poll() is None, process.communicate()[1]  # the send must still be running
        assert time.monotonic() < deadline, "no delivery within 60 s"
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
