"""Import a Mailchimp-style CSV into SQLite, then time segment counts.

    python benchmarks/audience.py [--rows 1000000]

Prints the import's seconds and peak memory, the ratio to a plain sqlite3 executemany of the
same rows measured in the same run, and the seconds of three segment counts.
Targets: import under 30 s, each count under 0.5 s, peak RSS under 300 MB.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.audience.segments import count, resolve
from pipeline.db.engine import Store

IMPORT_TARGET_S = 30.0
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


IMPORT_SCRIPT = """
import sys, time
from pathlib import Path
from pipeline.db.engine import Store
from pipeline.audience.importing.write import ImportOptions, import_csv
store = Store(sys.argv[1])
start = time.perf_counter()
report = import_csv(store, Path(sys.argv[2]), ImportOptions())
print(time.perf_counter() - start, report.added, report.rejected)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "audience.csv"
        generate(source, args.rows)
        print(f"generated {args.rows:,} rows ({source.stat().st_size / 1e6:.0f} MB)")
        floor = baseline(source, folder / "baseline.db")

        url = f"sqlite:///{folder / 'campaign.db'}"
        process = subprocess.Popen([sys.executable, "-c", IMPORT_SCRIPT, url, str(source)],
                                   stdout=subprocess.PIPE, text=True)
        peak_rss = peak_pss = 0
        while process.poll() is None:
            rss, pss = tree_memory_kb(process.pid)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.05)
        assert process.returncode == 0 and process.stdout is not None
        peak_mb = peak_rss / 1024
        seconds, added, rejected = process.stdout.read().split()
        import_s = float(seconds)
        print(f"import: {import_s:.1f} s for {int(added):,} added, {int(rejected):,} rejected; "
              f"peak RSS {peak_mb:.0f} MB for both processes together ({peak_pss / 1024:.0f} MB PSS)")
        print(f"baseline sqlite3 executemany of the same rows: {floor:.1f} s; "
              f"import / baseline = {import_s / floor:.1f}x")

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
                best = statistics.median(timings)
                slowest = max(slowest, best)
                print(f"count {expression}: {found:,} in {best:.3f} s")
        store.close()

    results = [("import", import_s < IMPORT_TARGET_S, f"< {IMPORT_TARGET_S:.0f} s"),
               ("counts", slowest < COUNT_TARGET_S, f"< {COUNT_TARGET_S} s each"),
               ("memory", peak_mb < RSS_TARGET_MB, f"< {RSS_TARGET_MB:.0f} MB")]
    for name, ok, target in results:
        print(f"target {name} {target}: {'meets' if ok else 'MISSES'}")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
