"""Sends fanned out to real `campaign worker` processes through a real redis-server, with
PostgreSQL as the ledger: crashes, a broker restart, overlapping ticks, pause, the shared rate."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
import sqlalchemy as sa

from pipeline.clock import utcnow
from pipeline.db.schema import deliveries
from pipeline.delivery.ledger import TASK_MARK
from pipeline.settings.workspace import load_workspace
from pipeline.workers import TASK, fanout
from pipeline.workers.app import make_app
from tests.workers.conftest import Cluster


def message_ids(cluster: Cluster) -> dict[str, list[str]]:
    """Each recipient's Message-IDs, one per copy the sink received."""
    found: dict[str, list[str]] = defaultdict(list)
    with cluster.smtp.lock:
        received = list(cluster.smtp.received)
    for message in received:
        found[message.recipients[0].lower()].append(str(message.message["Message-ID"]))
    return found


def assert_nobody_lost_and_duplicates_only_among(cluster: Cluster, addresses: list[str], unknown: set[str]) -> None:
    """Everyone got the message (those whose row is unknown perhaps not), and only unknown rows got
    it twice, each time with the same Message-ID."""
    copies = message_ids(cluster)
    lost = set(addresses) - unknown - set(copies)
    assert not lost, f"never received: {sorted(lost)[:5]}"
    twice = {address for address, ids in copies.items() if len(ids) > 1}
    assert twice <= unknown, f"duplicates of rows that were not unknown: {sorted(twice - unknown)[:5]}"
    for address in twice:
        assert len(set(copies[address])) == 1, f"{address} got copies with different Message-IDs"


def test_a_send_goes_out_through_two_workers_once_each_and_status_shows_both(cluster: Cluster) -> None:
    addresses = cluster.people(120)
    cluster.start_worker()
    cluster.start_worker()
    done = cluster("send", "back-pain", "--segment", "True", "--yes", "--wait")
    assert done.exit_code == 0, done.stderr + cluster.log_tail()
    assert done.stdout == "queued 0\tsending 0\tsent 120\tfailed 0\tskipped 0\tunknown 0\n"
    assert done.stderr.rstrip().endswith(f"back-pain is sent, via the workers of {cluster.redis.url}.")
    assert cluster.smtp.recipients() == {a: 1 for a in addresses}
    entry = json.loads(cluster("status", "back-pain", "--json").stdout)[0]
    workers = entry["workers"]
    assert len(workers) == 2 and all(w["campaign_worker"] for w in workers), workers
    assert sum(w["sent"] for w in workers) == 120
    assert {w["worker"].split(":")[0] for w in workers} == {socket.gethostname()}
    shown = cluster("status", "back-pain").stdout
    assert sum(line.startswith(f"  worker {w['worker']}: sent {w['sent']} at ") for line in shown.splitlines()
               for w in workers) == 2
    # The ledger names the sending process of every row, and the Message-IDs are the send's own.
    with cluster.store.reading() as conn:
        names = conn.execute(sa.select(deliveries.c.worker)).scalars().all()
    assert all(f":{TASK_MARK}" in name for name in names)


def test_a_worker_killed_mid_batch_loses_nobody_and_duplicates_only_unknown_rows(cluster: Cluster) -> None:
    addresses = cluster.people(160)
    cluster.smtp.behaviour.delay = 0.01  # a batch takes a while: the kill lands inside one
    victim = cluster.start_worker(concurrency=2)
    assert cluster("send", "back-pain", "--segment", "True", "--yes").exit_code == 0
    cluster.wait_for(lambda: len(cluster.smtp.received) >= 30, 30, "30 deliveries at the sink")
    cluster.kill(victim)
    at_kill = len(cluster.smtp.received)
    assert at_kill < len(addresses)
    assert cluster.held(f"{socket.gethostname()}:") > 0  # the dead worker held rows of its batch
    cluster.start_worker(concurrency=2)
    cluster.wait_for(cluster.finished, 60, "the send to finish", tick_every=1.0)
    unknown = {address for address, state in cluster.states().items() if state == "unknown"}
    assert len(unknown) <= 2  # at most the message in flight on each of the dead worker's connections
    assert_nobody_lost_and_duplicates_only_among(cluster, addresses, unknown)
    assert max(len(ids) for ids in message_ids(cluster).values()) == 1  # unknown rows are never resent by themselves
    # Asked to, they go out again, with the same Message-ID.
    again = cluster("send", "back-pain", "--yes", "--retry-unknown", "--wait")
    assert again.exit_code == 0, again.stderr
    assert set(cluster.states().values()) == {"sent"}
    assert_nobody_lost_and_duplicates_only_among(cluster, addresses, unknown)


def test_a_broker_restarted_mid_send_loses_nothing_and_sends_nothing_twice(cluster: Cluster,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_WORKERS_VISIBILITY_TIMEOUT", "6")  # lost batches are handed out again after 6 s
    addresses = cluster.people(150)
    cluster.smtp.behaviour.delay = 0.005
    cluster.start_worker()
    cluster.start_worker()
    assert cluster("send", "back-pain", "--segment", "True", "--yes").exit_code == 0
    cluster.wait_for(lambda: len(cluster.smtp.received) >= 20, 30, "20 deliveries at the sink")
    with_broker = cluster.held(fanout.HELD_BY_BROKER)
    cluster.redis.stop()  # no persistence: every batch in Redis is gone
    assert with_broker > 0  # the restart landed while batches were still with the broker
    time.sleep(1)
    cluster.redis.start()
    cluster.wait_for(cluster.finished, 90, "the send to finish", tick_every=1.0)
    unknown = {address for address, state in cluster.states().items() if state == "unknown"}
    assert not unknown
    assert cluster.smtp.recipients() == {a: 1 for a in addresses}


def test_two_ticks_at_once_with_workers_running_start_the_schedule_once_and_send_once(cluster: Cluster) -> None:
    addresses = cluster.people(100)
    due = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=1)
    made = cluster("schedule", "back-pain", "--at", due.strftime("%Y-%m-%d %H:%M"), "--tz", "UTC",
                   "--now", (due - timedelta(minutes=5)).isoformat())
    assert made.exit_code == 0, made.stderr
    cluster.start_worker()
    cluster.start_worker()
    ticks = [cluster.tick_process(), cluster.tick_process()]
    for process in ticks:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    cluster.wait_for(cluster.finished, 60, "the send to finish", tick_every=1.0)
    assert cluster.smtp.recipients() == {a: 1 for a in addresses}
    events = [e["event"] for e in json.loads(cluster("status", "back-pain", "--json").stdout)[0]["history"]]
    assert events.count("started") == 1


def test_pause_stops_every_worker_within_the_messages_in_flight_and_resume_finishes(cluster: Cluster) -> None:
    addresses = cluster.people(240)
    cluster.smtp.behaviour.delay = 0.01
    cluster.start_worker(concurrency=2)
    cluster.start_worker(concurrency=2)
    assert cluster("send", "back-pain", "--segment", "True", "--yes").exit_code == 0
    cluster.wait_for(lambda: len(cluster.smtp.received) >= 40, 30, "40 deliveries at the sink")
    assert cluster("pause", "back-pain").exit_code == 0
    at_pause = len(cluster.smtp.received)
    time.sleep(2)
    after = len(cluster.smtp.received)
    assert after - at_pause <= 4  # one message in flight per connection at most, far less than a batch (20)
    assert after < len(addresses)
    states = Counter(cluster.states().values())
    assert states["sending"] == 0 and states["unknown"] == 0 and states["queued"] > 0
    assert cluster.held("") == 0  # every worker gave back the rows it held
    assert cluster("resume", "back-pain").exit_code == 0
    cluster.wait_for(cluster.finished, 60, "the send to finish", tick_every=1.0)
    assert cluster.smtp.recipients() == {a: 1 for a in addresses}


def test_the_rate_holds_for_all_workers_together(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_SENDING_RATE", "20/s")
    monkeypatch.setenv("CAMPAIGN_WORKERS_BATCH", "10")
    addresses = cluster.people(110)
    cluster.start_worker(concurrency=2)
    cluster.start_worker(concurrency=2)
    assert cluster("send", "back-pain", "--segment", "True", "--yes").exit_code == 0
    marks: dict[int, float] = {}
    deadline = time.monotonic() + 60
    while len(cluster.smtp.received) < len(addresses) and time.monotonic() < deadline:
        marks.setdefault(len(cluster.smtp.received), time.monotonic())
        time.sleep(0.01)
    reached = sorted(marks)
    first = next(n for n in reached if n >= 10)
    last = max(reached)
    assert last >= 100, cluster.log_tail()
    rate = (last - first) / (marks[last] - marks[first])
    assert 16 <= rate <= 23, f"{rate:.1f} messages/s for 2 workers at 20/s together"
    workers = json.loads(cluster("status", "back-pain", "--json").stdout)[0]["workers"]
    assert len(workers) == 2 and min(w["sent"] for w in workers) >= 20, workers  # both sent a fair share


def test_a_late_or_repeated_batch_sends_nothing_twice(cluster: Cluster) -> None:
    """The same batch delivered again (a broker redelivery) while and after it is sent, and a batch
    whose rows the sweeper handed out again under a new token: every recipient once."""
    addresses = cluster.people(60)
    captured: list[dict[str, object]] = []
    workspace = load_workspace(cluster.root)
    app = make_app(cluster.redis.url, workspace.workers.visibility_timeout)
    original = app.send_task

    def twice(name: str, kwargs: dict[str, object], **options: object) -> object:
        captured.append(kwargs)
        original(name, kwargs=kwargs, **options)
        return original(name, kwargs=kwargs, **options)  # every batch reaches the broker twice

    app.send_task = twice  # type: ignore[method-assign]
    try:
        assert cluster("send", "back-pain", "--segment", "True", "--yes").exit_code == 0
    finally:
        del app.send_task
    assert captured
    cluster.smtp.behaviour.delay = 0.005
    cluster.start_worker()
    cluster.start_worker()
    cluster.wait_for(cluster.finished, 60, "the send to finish", tick_every=1.0)
    # Much later, every batch once more, as a broker would after a visibility timeout.
    for kwargs in captured:
        app.send_task(TASK, kwargs=kwargs)
    cluster.wait_for(lambda: cluster.redis_queue_length() == 0, 30, "the repeated batches to be taken")
    time.sleep(1)
    assert cluster.smtp.recipients() == {a: 1 for a in addresses}
    assert set(cluster.states().values()) == {"sent"}


def test_the_sweeper_hands_out_again_a_batch_the_broker_lost(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_WORKERS_VISIBILITY_TIMEOUT", "4")
    addresses = cluster.people(40)
    with monkeypatch.context() as patch:
        patch.setattr(fanout, "_publish", lambda *args, **kwargs: None)  # the batches vanish on the way
        assert cluster("send", "back-pain", "--segment", "True", "--yes").exit_code == 0
    cluster.start_worker()
    assert cluster.tick().exit_code == 0
    time.sleep(1.5)
    assert len(cluster.smtp.received) == 0  # held for the lost batches: not handed out again yet
    assert cluster.held(fanout.HELD_BY_BROKER) == 40
    cluster.wait_for(cluster.finished, 30, "the send to finish", tick_every=1.0)
    assert cluster.smtp.recipients() == {a: 1 for a in addresses}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stopped_worker_stops_after_the_messages_in_flight(cluster: Cluster, signum: int) -> None:
    cluster.people(100)
    cluster.smtp.behaviour.delay = 0.01
    worker = cluster.start_worker(concurrency=2)
    assert cluster("send", "back-pain", "--segment", "True", "--yes").exit_code == 0
    cluster.wait_for(lambda: len(cluster.smtp.received) >= 10, 30, "10 deliveries at the sink")
    os.killpg(worker.pid, signum)  # as systemd (the whole control group) or a terminal (its foreground group)
    worker.wait(20)
    states = Counter(cluster.states().values())
    assert states["sending"] == 0 and states["unknown"] == 0 and states["queued"] > 0
    assert cluster.held(f"{socket.gethostname()}:") == 0  # what it held, it gave back


def test_status_of_an_in_process_send_has_no_worker_lines(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMPAIGN_WORKERS_BROKER")
    cluster.people(3)
    assert cluster("--transport", cluster.smtp.url, "send", "back-pain", "--yes").exit_code == 0
    assert "  worker " not in cluster("status", "back-pain").stdout
    entry = json.loads(cluster("status", "back-pain", "--json").stdout)[0]
    assert [w["campaign_worker"] for w in entry["workers"]] == [False]

