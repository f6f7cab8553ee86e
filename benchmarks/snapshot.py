"""Fixing a send's recipients, and the bookkeeping of a send under way, on a large list.

    python benchmarks/snapshot.py [--subscribers 1000000]

1. The snapshot of every subscriber into one delivery row each, as `campaign send` makes it,
   against a hand-written INSERT .. SELECT on the same schema in the same run. Target <= 1.5x.
2. `campaign send SLUG --limit 1` on a send of that size already under way (a fresh process:
   recovery, counts, the claim, one message, the report). Target <= 5 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from pipeline.audience.segments import everyone
from pipeline.clock import sql_time
from pipeline.db.engine import Store, default_url
from pipeline.delivery.ledger import snapshot
from pipeline.delivery.sends import create_send
from pipeline.settings.scaffold import init_workspace

SNAPSHOT_RATIO = 1.5
LIMIT_ONE_S = 5.0


def fill(root: Path, count: int) -> None:
    """count subscribed readers, written straight into the schema the program made."""
    Store(default_url(root)).close()
    now = sql_time(datetime.now(UTC))
    conn = sqlite3.connect(root / "campaign.db")
    rows = ((f"reader{n}@mail{n % 97}.example", f"reader{n}@mail{n % 97}.example", f"R{n % 50}", None, "{}", None,
             "subscribed", now, now, now) for n in range(count))
    conn.executemany("INSERT INTO subscribers (email, email_key, first_name, last_name, fields, timezone, status, "
                     "signed_up, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


def ours(root: Path) -> float:
    store = Store(default_url(root))
    now = datetime.now(UTC)
    start = time.perf_counter()
    with store.transaction() as conn:
        send = create_send(conn, "back-pain", segment="True", subject="x", state="sending", now=now)
        made = snapshot(conn, send, everyone(), now)
    elapsed = time.perf_counter() - start
    store.close()
    assert made > 0
    return elapsed


def baseline(root: Path) -> float:
    conn = sqlite3.connect(root / "campaign.db", isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    now = sql_time(datetime.now(UTC))
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO sends (campaign, occurrence, state, created_at, updated_at) "
                 "VALUES ('back-pain', '', 'sending', ?, ?)", (now, now))
    send_id = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    conn.execute("INSERT INTO deliveries (send_id, subscriber_id, state, due_at, attempts, updated_at) "
                 "SELECT ?, id, 'queued', ?, 0, ? FROM subscribers WHERE status = 'subscribed'", (send_id, now, now))
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def limit_one(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "--workspace", str(root), "send", "back-pain", "--yes",
                    "--limit", "1"], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "clinic"
        init_workspace(root)
        fill(root, args.subscribers)
        copy = Path(folder) / "copy"
        shutil.copytree(root, copy)
        print(f"load average {os.getloadavg()[0]:.2f}; {args.subscribers:,} subscribers")
        theirs = baseline(copy)
        mine = ours(root)
        ratio = mine / theirs
        print(f"1. snapshot: {mine:.2f} s; hand-written INSERT .. SELECT {theirs:.2f} s; ratio {ratio:.2f}x; "
              f"target <= {SNAPSHOT_RATIO}x: {'meets' if ratio <= SNAPSHOT_RATIO else 'MISSES'}")
        first = limit_one(root)
        second = limit_one(root)
        print(f"2. send --limit 1 on a send of {args.subscribers:,} under way: {second:.2f} s (the first, which "
              f"also builds the campaign and freezes it: {first:.2f} s); target <= {LIMIT_ONE_S:g} s: "
              f"{'meets' if second <= LIMIT_ONE_S else 'MISSES'}")


if __name__ == "__main__":
    main()
