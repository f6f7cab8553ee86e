"""Sending benchmarks, each against a baseline measured in the same run.

    python benchmarks/send.py [--quick] [--recipients N] [--only STEP]

1. Personalise and build MIME bytes on one core, against email.message.EmailMessage.
2. End to end (claim, personalise, SMTP, record) into a minimal asyncio SMTP sink on
   127.0.0.1, beside the ceiling of a raw pipelined client against the same sink.
3. Against a sink that waits 40 ms before each reply: 8 connections against 1.
4. Peak RSS of `campaign send` to --recipients (200,000) on SQLite, into the fast sink.
Targets: 1. >= 10,000 messages/s; 2. >= 3,000 messages/s and >= 0.4 of the raw client;
3. 8 connections >= 6x one; 4. < 150 MB.
"""

from __future__ import annotations

import argparse
import csv
import email.policy
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path

from pipeline.audience.importing.write import ImportOptions, import_csv
from pipeline.audience.recipients import Recipient
from pipeline.audience.tokens import Tokens
from pipeline.clock import utcnow
from pipeline.db.engine import Store, default_url
from pipeline.delivery.runs import SendOptions
from pipeline.delivery.mime import MessageFactory
from pipeline.delivery.personalise import Personaliser
from pipeline.delivery.sending import begin_send, connection_factory, plan, run
from pipeline.settings.scaffold import init_workspace
from pipeline.settings.workspace import load_workspace
from smtp_sink import Sink  # benchmarks/ is on the path when a script runs

FIRST = ["Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hiro", "Inès", "Jamal", "Kai", "Lena"]


def workspace(folder: Path, subscribers: int) -> Path:
    root = folder / "clinic"
    init_workspace(root)
    if subscribers:
        source = folder / "list.csv"
        with source.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["email", "first_name", "tags"])
            for n in range(subscribers):
                writer.writerow([f"reader{n}@mail{n % 97}.example", FIRST[n % len(FIRST)], "back-pain"])
        import_csv(Store(default_url(root)), source, ImportOptions())
    return root


def build_rate(folder: Path, count: int, baseline_count: int) -> None:
    from pipeline.content.build import build_campaign

    root = workspace(folder / "build", 0)
    ws = load_workspace(root)
    built = build_campaign(ws, "back-pain")
    rendered = built.rendered
    personaliser = Personaliser(ws, built.content, "back-pain", Tokens("benchmark-secret"))
    factory = MessageFactory(personaliser, 1)
    people = [Recipient(n, f"reader{n}@example.com", f"{FIRST[n % len(FIRST)]} Reader",
                        {"first_name": FIRST[n % len(FIRST)], "email": f"reader{n}@example.com"}) for n in range(count)]
    start = time.perf_counter()
    size = 0
    for person in people:
        size += len(factory.build(person)[1])
    ours = count / (time.perf_counter() - start)

    start = time.perf_counter()
    for person in people[:baseline_count]:
        values = personaliser.values(person)
        copy = personaliser.copy(person)
        html, text = copy.html, copy.text
        message = EmailMessage()
        message["From"] = f"{ws.sender.from_name} <{ws.sender.from_address}>"
        message["To"] = f"{person.name} <{person.email}>"
        message["Subject"] = rendered.newsletter.subject
        message["Message-ID"] = factory.message_id(person.subscriber_id)
        message["List-Unsubscribe"] = f"<{values['unsubscribe_url']}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        message.as_bytes(policy=email.policy.SMTP)
    baseline = baseline_count / (time.perf_counter() - start)
    print(f"1. build MIME: {ours:,.0f} messages/s for {count:,} recipients ({size / count / 1024:.1f} KB each); "
          f"EmailMessage one by one: {baseline:,.0f}/s; ratio {ours / baseline:.1f}x; "
          f"target >= 10,000/s: {'meets' if ours >= 10_000 else 'MISSES'}")


def raw_ceiling(port: int, message: bytes, count: int, connections: int) -> float:
    """A client that does nothing but pipeline prepared messages at the sink: the ceiling."""
    def client(share: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            sock.sendall(b"EHLO bench\r\n")
            while not reader.readline().startswith(b"250 "):
                pass
            for _ in range(share):
                sock.sendall(b"MAIL FROM:<b@example.com>\r\nRCPT TO:<r@example.com>\r\nDATA\r\n")
                for _ in range(3):
                    reader.readline()
                sock.sendall(message + b"\r\n.\r\n")
                reader.readline()
            sock.sendall(b"QUIT\r\n")

    threads = [threading.Thread(target=client, args=(count // connections,)) for _ in range(connections)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return (count // connections * connections) / (time.perf_counter() - start)


def send_rate(root: Path, port: int, concurrency: int, limit: int | None = None) -> tuple[float, int]:
    ws = load_workspace(root)
    store = Store(default_url(root))
    chosen = plan(store, ws, "back-pain", "True")
    row = begin_send(store, chosen, "back-pain", utcnow())
    _, connect = connection_factory(ws, f"smtp://127.0.0.1:{port}")
    start = time.perf_counter()
    result = run(store, ws, row, connect,
                 SendOptions(concurrency=concurrency, limit=limit))
    elapsed = time.perf_counter() - start
    return result.report.sent / elapsed, result.report.sent


def end_to_end(folder: Path, count: int) -> None:
    root = workspace(folder / "e2e", count)
    sink = Sink()
    raw_count = 20_000
    try:
        rate, sent = send_rate(root, sink.port, concurrency=4)
        message = b"Subject: x\r\n\r\n" + b"y" * 40_000
        ceiling = raw_ceiling(sink.port, message, raw_count, 4)
    finally:
        accepted = sink.stop() - raw_count
    met = rate >= 3_000 and rate / ceiling >= 0.4
    print(f"2. end to end, 4 connections: {rate:,.0f} messages/s ({sent:,} sent, sink accepted {accepted:,}); raw pipelined "
          f"client ceiling {ceiling:,.0f}/s; ratio {rate / ceiling:.2f}; target >= 3,000/s and >= 0.4: "
          f"{'meets' if met else 'MISSES'}")


def slow_server(folder: Path) -> None:
    root = workspace(folder / "slow", 400)
    sink = Sink(delay=0.04)
    try:
        one, _ = send_rate(root, sink.port, concurrency=1, limit=20)
        eight, _ = send_rate(root, sink.port, concurrency=8, limit=160)
    finally:
        sink.stop()
    print(f"3. sink waiting 40 ms a reply: 1 connection {one:.1f}/s, 8 connections {eight:.1f}/s; "
          f"ratio {eight / one:.1f}x; target >= 6x: {'meets' if eight / one >= 6 else 'MISSES'}")


def rss_kb(pid: int) -> int:
    """The process's peak RSS so far (VmHWM): polling VmRSS would miss a peak between two looks."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0
    # A process that has just exited is a zombie, with no VmHWM line.
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def memory(folder: Path, count: int) -> None:
    root = workspace(folder / "memory", count)
    sink = Sink()
    try:
        process = subprocess.Popen([sys.executable, "-m", "pipeline", "--workspace", str(root), "--transport",
                                    f"smtp://127.0.0.1:{sink.port}", "send", "back-pain", "--segment", "True",
                                    "--yes"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak = 0
        start = time.perf_counter()
        while process.poll() is None:
            peak = max(peak, rss_kb(process.pid))
            time.sleep(0.05)
        if process.returncode != 0:
            raise SystemExit(f"campaign send exited with {process.returncode}")
        elapsed = time.perf_counter() - start
        out = process.stdout.read() if process.stdout else ""
    finally:
        accepted = sink.stop()
    print(f"4. send to {count:,} recipients: peak RSS {peak / 1024:.0f} MB, {accepted:,} accepted in {elapsed:.0f} s "
          f"({out.strip()}); load average {load()}; target < 150 MB: {'meets' if peak / 1024 < 150 else 'MISSES'}")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Smaller runs, for a first look.")
    parser.add_argument("--recipients", type=int, default=200_000, help="Size of the send whose memory is measured.")
    parser.add_argument("--only", choices=["build", "end-to-end", "slow", "memory"], action="append",
                        help="Run only this step (may be given more than once).")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    steps = set(args.only or ["build", "end-to-end", "slow", "memory"])
    print(f"{os.cpu_count()} CPUs; load average before: {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "build" in steps:
            build_rate(folder, 20_000 // scale, 2_000 // scale)
        if "end-to-end" in steps:
            end_to_end(folder, 20_000 // scale)
        if "slow" in steps:
            slow_server(folder)
        if "memory" in steps:
            memory(folder, args.recipients // scale)
    print(f"load average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
