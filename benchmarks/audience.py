"""Import a Mailchimp-style CSV, then time segment counts.

    python benchmarks/audience.py [--rows 1000000] [--postgres URL]

1. SQLite: the import's seconds and the peak memory of all its processes, against a plain
   sqlite3 executemany of the same rows into one table in the same run. Targets: <= 3x, < 300 MB.
2. PostgreSQL (--postgres, or CAMPAIGN_TEST_POSTGRES_URL; a schema of its own): the import
   against psycopg's COPY of the same rows into one table, and its peak memory.
3. Three segment counts on the imported list, the query alone (target < 0.5 s each), and
   `campaign segments count` as a user runs it, a new process each time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from pipeline.audience.segments import count, resolve
from pipeline.db.engine import Store
from pipeline.settings.scaffold import init_workspace
from postgres import postgres_schema  # benchmarks/ is on the path when a script runs

IMPORT_RATIO = 3.0
COUNT_TARGET_S = 0.5
RSS_TARGET_MB = 300.0
EXPRESSIONS = (
    '"back-pain" in tags',
    'city == "Portland" and "vip" in tags',
    'signed_up >= date("2025-03-01") and signed_up < date("2025-06-01")',
)
HEADER = ["Email Address", "First Name", "Last Name", "Birth Year", "City", "MEMBER_RATING", "OPTIN_TIME",
          "CONFIRM_TIME", "TIMEZONE", "TAGS"]
FIRST = ["Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kai", "Lena"]
LAST = ["Lopez", "Okafor", "Martin", "Patel", "Nguyen", "Schmidt", "Rossi", "Kim", "Silva", "Cohen"]
CITIES = ["Portland", "San Francisco", "Seattle", "Oakland", "Eugene", "Boise", "Tacoma", "Salem"]
ZONES = ["America/Los_Angeles", "America/Denver", "America/New_York", "Europe/London", "Asia/Kolkata", ""]
TAGS = ["back-pain", "sleep", "vip", "migraine", "pregnant", "newsletter"]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    domains = [f"mail{n}.example" for n in range(300)] + ["gmail.com", "yahoo.com", "outlook.com"] * 100
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for n in range(rows):
            day = rng.randint(0, 364)
            optin = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(1735689600 + day * 86400 + rng.randint(0, 86399)))
            tags = rng.sample(TAGS, rng.randint(0, 3))
            first = rng.choice(FIRST)
            local = first.lower().replace("é", "e")  # addresses are ASCII even when names are not
            writer.writerow([
                f"{local}.{n}@{rng.choice(domains)}", first, rng.choice(LAST),
                rng.randint(1940, 2006), rng.choice(CITIES), rng.randint(1, 5), optin, optin,
                rng.choice(ZONES), ",".join(json.dumps(t) for t in tags),
            ])


def baseline(path: Path, db: Path) -> float:
    """The same rows into one SQLite table with the plain sqlite3 module: the floor to compare to."""
    start = time.perf_counter()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE subscribers (email TEXT UNIQUE, first_name TEXT, last_name TEXT, birth_year TEXT, "
                 "city TEXT, rating TEXT, optin TEXT, confirm TEXT, timezone TEXT, tags TEXT)")
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        conn.executemany("INSERT INTO subscribers VALUES (?,?,?,?,?,?,?,?,?,?)", reader)
    conn.commit()
    conn.close()
    return time.perf_counter() - start


def _field_kb(path: Path, name: str) -> int:
    return int(next(line.split()[1] for line in path.read_text().splitlines() if line.startswith(name)))


def tree_memory_kb(pid: int) -> tuple[int, int]:
    """RSS and PSS of a process and all its descendants, summed (the import parses in a child).

    The RSS sum counts pages the fork shares twice, so it overstates; PSS splits them.
    """
    rss = pss = 0
    try:
        rss = _field_kb(Path(f"/proc/{pid}/status"), "VmRSS:")
        pss = _field_kb(Path(f"/proc/{pid}/smaps_rollup"), "Pss:")
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                child_rss, child_pss = tree_memory_kb(int(child))
                rss, pss = rss + child_rss, pss + child_pss
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        pass
    return rss, pss


def copy_baseline(path: Path, url: str) -> float:
    """The same rows into one PostgreSQL table with psycopg's COPY: the floor to compare to."""
    engine = sa.create_engine(url)
    start = time.perf_counter()
    with engine.begin() as conn:
        driver = conn.connection.driver_connection
        with driver.cursor() as cursor:
            cursor.execute("CREATE TABLE copied (email TEXT UNIQUE, first_name TEXT, last_name TEXT, birth_year TEXT, "
                           "city TEXT, rating TEXT, optin TEXT, confirm TEXT, timezone TEXT, tags TEXT)")
            with path.open(encoding="utf-8", newline="") as fh, cursor.copy("COPY copied FROM STDIN") as copy:
                reader = csv.reader(fh)
                next(reader)
                for row in reader:
                    copy.write_row(row)
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def run_import(root: Path, url: str, source: Path) -> tuple[float, float, float]:
    """`campaign subscribers import` as a user runs it: seconds, and the peak RSS and PSS (MB)
    of the command and its helper process together."""
    with tempfile.TemporaryFile("w+") as errors:  # a pipe left unread would stall the progress bar
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "pipeline", "--workspace", str(root), "--db", url,
                                    "subscribers", "import", str(source)], stdout=subprocess.DEVNULL, stderr=errors)
        peak_rss = peak_pss = 0
        while process.poll() is None:
            rss, pss = tree_memory_kb(process.pid)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        errors.seek(0)
        assert process.returncode == 0, errors.read()
    return elapsed, peak_rss / 1024, peak_pss / 1024


def segment_counts(root: Path, url: str) -> float:
    """Each expression counted three times by the query alone and three times by the command;
    medians printed. Returns the slowest query median."""
    store = Store(url)
    slowest = 0.0
    with store.reading() as conn:
        for expression in EXPRESSIONS:
            segment = resolve(conn, expression, {})
            timings, found = [], 0
            for _ in range(3):
                start = time.perf_counter()
                found = count(conn, segment)
                timings.append(time.perf_counter() - start)
            command = []
            for _ in range(3):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "pipeline", "--workspace", str(root), "--db", url,
                                "segments", "count", expression], check=True, stdout=subprocess.DEVNULL)
                command.append(time.perf_counter() - start)
            best = statistics.median(timings)
            slowest = max(slowest, best)
            print(f"count {expression}: {found:,}; query {best:.3f} s, `campaign segments count` "
                  f"{statistics.median(command):.3f} s")
    store.close()
    return slowest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=os.environ.get("CAMPAIGN_TEST_POSTGRES_URL"),
                        help="A PostgreSQL URL to run the import on too (a schema of its own).")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "audience.csv"
        generate(source, args.rows)
        root = folder / "clinic"
        init_workspace(root)
        print(f"generated {args.rows:,} rows ({source.stat().st_size / 1e6:.0f} MB)")

        floor = baseline(source, folder / "baseline.db")
        url = f"sqlite:///{folder / 'campaign.db'}"
        seconds, rss, pss = run_import(root, url, source)
        print(f"SQLite import: {seconds:.1f} s, peak RSS {rss:.0f} MB for all its processes ({pss:.0f} MB PSS); "
              f"sqlite3 executemany of the same rows {floor:.1f} s; {seconds / floor:.2f}x")
        results += [("SQLite import", seconds / floor <= IMPORT_RATIO, f"<= {IMPORT_RATIO:.0f}x executemany"),
                    ("SQLite memory", rss < RSS_TARGET_MB, f"< {RSS_TARGET_MB:.0f} MB")]

        if args.postgres:
            with postgres_schema(args.postgres) as pg_floor_url:
                pg_floor = copy_baseline(source, pg_floor_url)
            with postgres_schema(args.postgres) as pg_url:
                pg_seconds, pg_rss, pg_pss = run_import(root, pg_url, source)
            print(f"PostgreSQL import: {pg_seconds:.1f} s, peak RSS {pg_rss:.0f} MB ({pg_pss:.0f} MB PSS); "
                  f"psycopg COPY of the same rows {pg_floor:.1f} s; {pg_seconds / pg_floor:.2f}x")
            results.append(("PostgreSQL memory", pg_rss < RSS_TARGET_MB, f"< {RSS_TARGET_MB:.0f} MB"))

        slowest = segment_counts(root, url)
        results.append(("counts", slowest < COUNT_TARGET_S, f"< {COUNT_TARGET_S} s each"))
    print(f"load average {os.getloadavg()[0]:.1f}")
    for name, ok, target in results:
        print(f"target {name} {target}: {'meets' if ok else 'MISSES'}")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
