"""What a command costs before it does anything: `campaign --help` and a `send-due` tick with
nothing due, each against `python3 -c "import sqlite3, email.message"` measured in the same run.

    python benchmarks/startup.py [--runs 15]

The workspace has a finished send, a schedule in the future and a recurring digest not yet due,
so the tick really looks and finds nothing. Targets: send-due <= 6x the baseline, --help <= 10x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CAMPAIGN = [sys.executable, "-m", "pipeline"]
TARGETS = {"send-due": 6.0, "--help": 10.0}


def timed(command: list[str], runs: int, cwd: Path | None = None) -> float:
    """The median wall time of a fresh process running command, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def workspace(folder: Path) -> Path:
    root = folder / "clinic"
    subprocess.run([*CAMPAIGN, "init", str(root)], check=True, capture_output=True)
    run = [*CAMPAIGN, "--workspace", str(root)]
    subprocess.run([*run, "subscribers", "import", str(root / "subscribers.csv")], check=True, capture_output=True)
    subprocess.run([*run, "send", "back-pain", "--yes"], check=True, capture_output=True)
    digest = root / "campaigns" / "monthly"
    (digest / "posts").mkdir(parents=True)
    (digest / "settings.toml").write_text('subject = "News"\nrecurrence = "monthly on day 1 at 09:00"\n'
                                          'source = "posts"\n', encoding="utf-8")
    subprocess.run([*run, "schedule", "monthly"], check=True, capture_output=True)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = workspace(Path(folder))
        campaign = [*CAMPAIGN, "--workspace", str(root)]
        for command in (campaign + ["--help"], campaign + ["send-due"]):  # compile once, as an installed copy has
            subprocess.run(command, check=True, capture_output=True)
        baseline = timed([sys.executable, "-c", "import sqlite3, email.message"], args.runs)
        print(f"load average {os.getloadavg()[0]:.2f}; medians of {args.runs} runs")
        print(f"baseline python3 -c 'import sqlite3, email.message': {baseline * 1000:.0f} ms")
        for name, args_ in (("--help", ["--help"]), ("send-due", ["send-due", "--quiet"])):
            ours = timed(campaign + args_, args.runs)
            ratio = ours / baseline
            verdict = "meets" if ratio <= TARGETS[name] else "MISSES"
            print(f"campaign {name}: {ours * 1000:.0f} ms; ratio {ratio:.1f}x; target <= {TARGETS[name]:g}x: {verdict}")


if __name__ == "__main__":
    main()
