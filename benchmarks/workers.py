"""Scale-out benchmark: one send in its own process against `campaign worker` with 1, 2 and 4
processes, on the same PostgreSQL, the same redis-server and the same sink, in one run.

    python benchmarks/workers.py [--runs 3] [--quick] [--memory N]

1. A fast sink (benchmarks/smtp_sink.py): 4 connections per process; the in-process send also 4.
2. A sink that waits 40 ms before each reply: 4 connections per process, so 4, 8 and 16 in all.
Each figure is the median of --runs sends, from handing the send out to its last row recorded
(workers are started, and ready, before); the configurations take turns. The machine's load
average is printed before and after.
With --memory N, only: a send to N recipients (1,000,000 for the target) by 2 worker processes
into the fast sink, each process's peak RSS (VmHWM) sampled until the send is done.
Targets: 1. two worker processes >= 1.7x one; 2. throughput grows with the connections;
memory: < 200 MB RSS per worker process.

Needs redis-server and a PostgreSQL database: CAMPAIGN_BENCH_POSTGRES_URL, else the one the
tests use (CAMPAIGN_TEST_POSTGRES_URL), else postgresql+psycopg://campaign:campaign@127.0.0.1:5432/campaign_ci.
Each run works in a schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from pipeline.audience.importing.write import ImportOptions, import_csv
from pipeline.clock import utcnow
from pipeline.db.engine import Store
from pipeline.db.schema import deliveries
from pipeline.delivery.ledger import pending
from pipeline.delivery.runs import SendOptions
from pipeline.delivery.sending import begin_send, connection_factory, plan, run
from pipeline.settings.scaffold import init_workspace
from pipeline.settings.workspace import load_workspace
from postgres import postgres_schema  # benchmarks/ is on the path when a script runs
from smtp_sink import Sink

CONNECTIONS = 4  # per process, and for the send in its own process
DEFAULT_POSTGRES = "postgresql+psycopg://campaign:campaign@127.0.0.1:5432/campaign_ci"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                "no", "--dir", str(folder)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def postgres_url() -> str:
    return os.environ.get("CAMPAIGN_BENCH_POSTGRES_URL") or os.environ.get("CAMPAIGN_TEST_POSTGRES_URL") or \
        DEFAULT_POSTGRES


class Bench:
    """A workspace on PostgreSQL with its subscribers; every measured send is a new campaign."""

    def __init__(self, folder: Path, db_url: str, groups: dict[str, int]) -> None:
        """groups: tag -> how many subscribers have it (one tag each); a send goes to one group."""
        self.root = folder / "clinic"
        init_workspace(self.root)
        self.db_url = db_url
        self.store = Store(db_url)
        source = folder / "list.csv"
        with source.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["email", "first_name", "tags"])
            n = 0
            for tag, count in groups.items():
                for _ in range(count):
                    writer.writerow([f"reader{n}@mail{n % 97}.example", "Reader", tag])
                    n += 1
        import_csv(self.store, source, ImportOptions())
        self.made = 0

    def campaign(self) -> str:
        self.made += 1
        slug = f"run-{self.made}"
        shutil.copytree(self.root / "campaigns" / "back-pain", self.root / "campaigns" / slug)
        return slug

    def begin(self, group: str):  # type: ignore[no-untyped-def]
        ws = load_workspace(self.root)
        slug = self.campaign()
        row = begin_send(self.store, plan(self.store, ws, slug, f'"{group}" in tags'), slug, utcnow())
        return ws, row

    def in_process(self, sink: Sink, group: str) -> float:
        ws, row = self.begin(group)
        _, connect = connection_factory(ws, sink.url)
        start = time.perf_counter()
        result = run(self.store, ws, row, connect, SendOptions(concurrency=CONNECTIONS))
        return result.report.sent / (time.perf_counter() - start)

    def by_workers(self, group: str) -> float:
        """From handing the send out to the last delivery recorded sent, by the ledger's clock."""
        from pipeline.workers.fanout import hand_out

        ws, row = self.begin(group)
        start = utcnow()
        hand_out(self.store, ws, [row])
        while True:
            time.sleep(0.2)  # a light watch: the figure comes from the ledger's times, not from this loop
            with self.store.reading() as conn:
                left, _ = pending(conn, row.id)
            if not left:
                break
        with self.store.reading() as conn:
            sent, last = conn.execute(sa.select(sa.func.count(), sa.func.max(deliveries.c.sent_at)).where(
                deliveries.c.send_id == row.id, deliveries.c.state == "sent")).one()
        return int(sent) / (last - start).total_seconds()

    @contextmanager
    def workers(self, sink: Sink, processes: int, log: Path) -> Iterator[int]:
        with log.open("w", encoding="utf-8") as out:
            process = subprocess.Popen([sys.executable, "-m", "pipeline", "--workspace", str(self.root), "--db",
                                        self.db_url, "--transport", sink.url, "worker", "--processes", str(processes),
                                        "--concurrency", str(CONNECTIONS)], stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while " ready." not in log.read_text(encoding="utf-8"):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit(f"the worker did not start:\n{log.read_text(encoding='utf-8')}")
                time.sleep(0.1)
            time.sleep(0.5)  # the forked processes' first imports
            yield process.pid
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)


def peak_kb(pid: int) -> int:
    """A process's peak RSS so far (VmHWM); 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def children(pid: int) -> list[int]:
    """The processes `pid` forked (Celery's pool processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def memory(folder: Path, db_url: str, recipients: int) -> None:
    """One send of `recipients` by 2 worker processes; each process's peak RSS along the way."""
    from pipeline.workers.fanout import hand_out

    started = time.perf_counter()
    bench = Bench(folder, db_url, {"big": recipients})
    print(f"imported {recipients:,} subscribers in {time.perf_counter() - started:.0f} s; load average {load()}")
    os.environ["CAMPAIGN_WORKERS_BATCH"] = "500"
    sink = Sink()
    log = folder / "worker-memory.log"
    peaks: dict[int, int] = {}
    try:
        with bench.workers(sink, 2, log) as main_pid:
            ws, row = bench.begin("big")
            start = time.perf_counter()
            hand_out(bench.store, ws, [row])
            left, said = recipients, time.perf_counter()
            while left:
                for pid in [main_pid, *children(main_pid)]:
                    peaks[pid] = max(peaks.get(pid, 0), peak_kb(pid))
                time.sleep(0.5)
                with bench.store.reading() as conn:
                    left, _ = pending(conn, row.id)
                if time.perf_counter() - said >= 60:  # a long run says how it goes, memory so far included
                    said = time.perf_counter()
                    print(f"  {recipients - left:,} done in {said - start:.0f} s; peak RSS so far: " +
                          ", ".join(f"{kb / 1024:.0f} MB" for kb in peaks.values()), flush=True)
            elapsed = time.perf_counter() - start
            for pid in [main_pid, *children(main_pid)]:
                peaks[pid] = max(peaks.get(pid, 0), peak_kb(pid))
    finally:
        accepted = sink.stop()
    with bench.store.reading() as conn:
        sent = conn.execute(sa.select(sa.func.count()).where(deliveries.c.send_id == row.id,
                                                             deliveries.c.state == "sent")).scalar()
    pool = {pid: kb for pid, kb in peaks.items() if pid != main_pid}
    worst = max(pool.values(), default=0) / 1024
    print(f"memory: {sent:,} sent by 2 worker processes in {elapsed:.0f} s ({sent / elapsed:,.0f}/s; sink accepted "
          f"{accepted:,}); peak RSS per pool process: " +
          ", ".join(f"{kb / 1024:.0f} MB" for kb in pool.values()) +
          f"; the worker's main process {peaks.get(main_pid, 0) / 1024:.0f} MB; load average {load()}; "
          f"target < 200 MB each: {'meets' if pool and worst < 200 else 'MISSES'}")
    bench.store.close()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(bench: Bench, sink: Sink, runs: int, group: str, folder: Path) -> dict[str, float]:
    """Sends per second to `group`: in one process, then by 1, 2 and 4 worker processes (after a
    smaller warm-up send each, so the processes have made their connections and factories). The
    configurations take turns, run after run, so a change in the machine's load hits them alike."""
    found: dict[str, list[float]] = {}
    bench.in_process(sink, f"{group}-warm")
    for _ in range(runs):
        found.setdefault("in-process", []).append(bench.in_process(sink, group))
        for processes in (1, 2, 4):
            with bench.workers(sink, processes, folder / f"worker-{group}-{processes}.log"):
                bench.by_workers(f"{group}-warm")
                found.setdefault(f"{processes} worker process(es)", []).append(bench.by_workers(group))
    return {name: statistics.median(rates) for name, rates in found.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="Sends per figure; the median is shown.")
    parser.add_argument("--quick", action="store_true", help="Fewer recipients, for a first look.")
    parser.add_argument("--memory", type=int, metavar="N", help="Only the memory run, a send to N recipients.")
    args = parser.parse_args()
    fast_count, slow_count = (1_500, 240) if args.quick else (6_000, 640)
    with tempfile.TemporaryDirectory() as tmp, postgres_schema(postgres_url()) as db_url, redis_server(Path(tmp)) as broker:
        folder = Path(tmp)
        os.environ.update({"CAMPAIGN_WORKERS_BROKER": broker, "CAMPAIGN_WORKERS_WINDOW": "16"})
        if args.memory:
            print(f"{os.cpu_count()} CPUs; load average before: {load()}")
            memory(folder, db_url, args.memory)
            return 0
        bench = Bench(folder, db_url, {"fast": fast_count, "fast-warm": 200, "slow": slow_count, "slow-warm": 40})
        print(f"{os.cpu_count()} CPUs; load average before: {load()}")

        os.environ["CAMPAIGN_WORKERS_BATCH"] = "500"
        sink = Sink()
        try:
            fast = measure(bench, sink, args.runs, "fast", folder)
        finally:
            sink.stop()
        one, two = fast["1 worker process(es)"], fast["2 worker process(es)"]
        print(f"1. fast sink, {fast_count:,} recipients, {CONNECTIONS} connections per process: " + "; ".join(
            f"{name} {rate:,.0f}/s" for name, rate in fast.items()) +
            f"; 2 processes / 1: {two / one:.2f}x; target >= 1.7x: {'meets' if two / one >= 1.7 else 'MISSES'}")

        os.environ["CAMPAIGN_WORKERS_BATCH"] = "20"
        sink = Sink(delay=0.04)
        try:
            slow = measure(bench, sink, args.runs, "slow", folder)
        finally:
            sink.stop()
        rates = [slow[f"{p} worker process(es)"] for p in (1, 2, 4)]
        grows = rates[0] < rates[1] < rates[2]
        print(f"2. sink waiting 40 ms a reply, {slow_count} recipients: " + "; ".join(
            f"{name} ({CONNECTIONS * int(name[0]) if name[0].isdigit() else CONNECTIONS} connections) {rate:,.1f}/s"
            for name, rate in slow.items()) +
            f"; 4 processes / 1: {rates[2] / rates[0]:.1f}x; grows with connections: {'meets' if grows else 'MISSES'}")
        print(f"load average after: {load()}")
        bench.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
