"""Tracking benchmarks, each against a baseline or a target, in one run.

    python benchmarks/tracking.py [--quick] [--postgres URL]

1. Personalise and build MIME bytes on one core with tracking on (a token per link, the open
   pixel) against tracking off, in interleaved rounds: the same messages, the same process.
2. Event intake of a real `campaign serve` (its own process) on SQLite, and on PostgreSQL with
   --postgres (or CAMPAIGN_TEST_POSTGRES_URL): requests/s and latency over keep-alive connections,
   then 2,000 hits at once on fresh connections; every hit must be answered and recorded.
3. `campaign report`'s figures and HTML for a send of 100,000 messages with 1,000,000 events.
Targets: 1. tracked >= 80 % of untracked; 2. no hit lost or refused; 3. under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from pipeline.audience.recipients import Recipient
from pipeline.audience.tokens import Tokens
from pipeline.clock import sql_time, utcnow
from pipeline.content.build import build_campaign
from pipeline.db.engine import Store
from pipeline.delivery.mime import MessageFactory
from pipeline.delivery.personalise import Personaliser
from pipeline.delivery.sending import begin_send, plan
from pipeline.engagement.policy import TrackingPlan
from pipeline.engagement.tokens import TrackingTokens
from pipeline.settings.scaffold import init_workspace
from pipeline.settings.workspace import load_workspace
from postgres import postgres_schema  # benchmarks/ is on the path when a script runs

FIRST = ["Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hiro", "Inès", "Jamal", "Kai", "Lena"]
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def tracked_workspace(folder: Path) -> Path:
    root = folder / "clinic"
    init_workspace(root)
    config = root / "campaign.toml"
    config.write_text(config.read_text() + "\n[tracking]\nopens = true\nclicks = true\n")
    return root


def build_rate(folder: Path, count: int, rounds: int) -> None:
    """Rounds of `count` messages, tracking off and on in turn; each side's best round counts (a
    busy machine only ever slows a round down)."""
    root = tracked_workspace(folder / "build")
    ws = load_workspace(root)
    built = build_campaign(ws, "back-pain")
    personaliser = Personaliser(ws, built.content, "back-pain", Tokens("benchmark-secret" * 3))
    off = MessageFactory(personaliser, 1)
    on = MessageFactory(personaliser, 1, TrackingPlan(True, True))
    people = [Recipient(n + 1, f"reader{n}@example.com", f"{FIRST[n % len(FIRST)]} Reader",
                        {"first_name": FIRST[n % len(FIRST)], "email": f"reader{n}@example.com"}) for n in range(count)]
    rates: dict[str, list[float]] = {"off": [], "on": []}
    size = {"off": 0, "on": 0}
    for _ in range(rounds):
        for name, factory in (("off", off), ("on", on)):
            start = time.perf_counter()
            for person in people:
                size[name] = len(factory.build(person)[1])
            rates[name].append(count / (time.perf_counter() - start))
    off_rate, on_rate = max(rates["off"]), max(rates["on"])
    links = len(personaliser.links)
    print(f"1. build MIME, best of {rounds} rounds of {count:,} recipients, one core: tracking off {off_rate:,.0f} "
          f"messages/s, on {on_rate:,.0f}/s ({links} links + the pixel, {size['on'] / 1024:.1f} KB); ratio "
          f"{on_rate / off_rate:.2f} (medians {statistics.median(rates['on']) / statistics.median(rates['off']):.2f}); "
          f"target >= 0.80: {'meets' if on_rate / off_rate >= 0.8 else 'MISSES'}")


def add_readers(store: Store, count: int) -> list[int]:
    from pipeline.db.schema import subscriber_tags, subscribers

    now = utcnow()
    zones = ["America/Los_Angeles", "America/New_York", "Europe/Paris", "Asia/Tokyo", None]
    rows = [{"email": f"reader{n}@example.com", "email_key": f"reader{n}@example.com", "first_name": FIRST[n % 12],
             "fields": {}, "timezone": zones[n % len(zones)], "status": "subscribed", "signed_up": now,
             "created_at": now, "updated_at": now} for n in range(count)]
    with store.transaction() as conn:
        for start in range(0, count, 5000):
            conn.execute(subscribers.insert(), rows[start:start + 5000])
        ids = list(conn.execute(sa.select(subscribers.c.id).order_by(subscribers.c.id)).scalars())
        for start in range(0, count, 5000):
            conn.execute(subscriber_tags.insert(), [{"tag": "back-pain", "subscriber_id": i}
                                                    for i in ids[start:start + 5000]])
    return ids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(root: Path, db_url: str) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "--workspace", str(root), "--db", db_url, "serve",
                                "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        process.stderr.readline()
        yield port
    finally:
        process.terminate()
        process.wait(60)


async def keep_alive(port: int, paths: list[str], connections: int) -> tuple[float, list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = list(reversed(paths))

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while queue:
            path = queue.pop()
            start = time.perf_counter()
            writer.write(f"GET /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {BROWSER}\r\n\r\n".encode())
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return len(paths) / (time.perf_counter() - start), latencies, statuses


async def at_once(port: int, paths: list[str]) -> tuple[float, list[float], dict[int, int]]:
    go = asyncio.Event()
    latencies: list[float] = []

    async def one(path: str) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await go.wait()
        start = time.perf_counter()
        writer.write(f"GET /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {BROWSER}\r\nConnection: close\r\n\r\n"
                     .encode())
        status = int((await reader.readline()).split()[1])
        await reader.read()
        latencies.append(time.perf_counter() - start)
        writer.close()
        return status

    tasks = [asyncio.create_task(one(p)) for p in paths]
    await asyncio.sleep(1.0)
    start = time.perf_counter()
    go.set()
    statuses: dict[int, int] = {}
    for status in await asyncio.gather(*tasks):
        statuses[status] = statuses.get(status, 0) + 1
    return time.perf_counter() - start, latencies, statuses


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def intake(folder: Path, name: str, db_url: str, requests: int, connections: int) -> None:
    from pipeline.db.schema import tracking_events

    root = tracked_workspace(folder / f"intake-{name}")
    store = Store(db_url)
    ws = load_workspace(root)
    readers = requests // 2 + 1000
    ids = add_readers(store, readers)
    send = begin_send(store, plan(store, ws, "back-pain"), "back-pain", utcnow())
    codec = TrackingTokens(Tokens.of_workspace(root).secret)
    heads = [codec.message(send.id, i, int(time.time())) for i in ids]
    steady = [f"o/{codec.token(h, 0)}" for h in heads[:requests // 2]] + \
             [f"c/{codec.token(h, 3)}" for h in heads[:requests // 2]]
    random.Random(1).shuffle(steady)
    burst = [f"o/{codec.token(h, 0)}" for h in heads[requests // 2:requests // 2 + 1000]] + \
            [f"c/{codec.token(h, 2)}" for h in heads[requests // 2:requests // 2 + 1000]]
    with serve(root, db_url) as port:
        ceiling, _, _ = asyncio.run(keep_alive(port, ["c/" + "A" * 36] * len(steady), connections))
        rate, latencies, statuses = asyncio.run(keep_alive(port, steady, connections))
        took, burst_latencies, burst_statuses = asyncio.run(at_once(port, burst))
        deadline = time.monotonic() + 60
        expected = len(steady) + len(burst)
        while time.monotonic() < deadline:
            with store.reading() as conn:
                written = int(conn.execute(sa.select(sa.func.count()).select_from(tracking_events)).scalar() or 0)
            if written >= expected:
                break
            time.sleep(0.2)
    store.close()
    answered = statuses.get(200, 0) + statuses.get(302, 0) + burst_statuses.get(200, 0) + burst_statuses.get(302, 0)
    print(f"2. intake on {name}: {rate:,.0f} requests/s over {connections} keep-alive connections "
          f"({len(steady):,} hits; the same server answers {ceiling:,.0f} 404s/s), latency p50 "
          f"{p(latencies, 0.5):.1f} ms, p99 {p(latencies, 0.99):.1f} ms; "
          f"2,000 hits at once answered in {took:.2f} s, p99 {p(burst_latencies, 0.99):.0f} ms; answered "
          f"{answered:,}/{expected:,}, recorded {written:,}/{expected:,}: "
          f"{'meets' if answered == expected == written else 'MISSES'}")


def report_time(folder: Path, name: str, db_url: str, messages: int, events: int) -> None:
    from pipeline.db.schema import deliveries
    from pipeline.engagement.report import report
    from pipeline.engagement.report_html import render

    root = tracked_workspace(folder / f"report-{name}")
    store = Store(db_url)
    ws = load_workspace(root)
    ids = add_readers(store, messages)
    sent_at = utcnow() - timedelta(days=4)
    send = begin_send(store, plan(store, ws, "back-pain"), "back-pain", sent_at)
    rng = random.Random(7)
    with store.transaction() as conn:
        conn.execute(deliveries.update().where(deliveries.c.send_id == send.id).values(state="sent", sent_at=sent_at))
        rows = []
        keys = rng.sample(range(1, 2**62), events)
        for n in range(events):
            reader = ids[rng.randrange(messages)]
            click = rng.random() < 0.3
            since = int(rng.expovariate(1 / 14400)) % (96 * 3600)
            machine = rng.random() < 0.15
            rows.append((keys[n], "click" if click else "open", send.id, reader, rng.randint(1, 3) if click else 0,
                         sql_time(sent_at + timedelta(seconds=since)), since,
                         "apple-proxy" if machine else "browser", machine))
        raw = conn.connection.driver_connection
        insert = ("INSERT INTO tracking_events (key, kind, send_id, subscriber_id, link, at, since_sent, agent, machine) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        if conn.dialect.name == "sqlite":
            raw.executemany(insert, rows)
        else:
            with raw.cursor().copy("COPY tracking_events (key, kind, send_id, subscriber_id, link, at, since_sent, "
                                   "agent, machine) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    with store.reading() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE")
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        data = report(store, ws, "back-pain")
        html = render(data)
        timings.append(time.perf_counter() - start)
    store.close()
    best = min(timings)
    print(f"3. report on {name}: {events:,} events of {messages:,} messages, figures and a {len(html) / 1024:.0f} KB "
          f"HTML page in {best:.2f} s (best of 3; first {timings[0]:.2f} s); target < 2 s: "
          f"{'meets' if best < 2 else 'MISSES'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Smaller runs, for a first look.")
    parser.add_argument("--postgres", default=os.environ.get("CAMPAIGN_TEST_POSTGRES_URL"),
                        help="A PostgreSQL URL to run the database benchmarks on too (a schema of their own).")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_rate(folder, 1_000, 41 // scale + 4)
        intake(folder, "SQLite", f"sqlite:///{folder / 'intake.db'}", 20_000 // scale, 100)
        if args.postgres:
            with postgres_schema(args.postgres) as url:
                intake(folder, "PostgreSQL", url, 20_000 // scale, 100)
        report_time(folder, "SQLite", f"sqlite:///{folder / 'report.db'}", 100_000 // scale, 1_000_000 // scale)
        if args.postgres:
            with postgres_schema(args.postgres) as url:
                report_time(folder, "PostgreSQL", url, 100_000 // scale, 1_000_000 // scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
