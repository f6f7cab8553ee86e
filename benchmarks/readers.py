"""How much of each saved page's article the HTML reader keeps, and how much of the page it drops,
beside trafilatura's own plain extraction of the same pages.

    python benchmarks/readers.py [--pages tests/fixtures/pages] [--verbose]

Each page has a JSON file of passages to keep and passages to drop (see that folder's README).
An expectation holds when a "keep" passage is in the output, or a "drop" passage is not.
Prints, per page and in all, "N of M (x %)" for the reader and for `trafilatura.extract(page)`
with its defaults, then the reader's milliseconds per page. Target: 90 % for the reader.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import trafilatura

from pipeline.content.readers import read_article
from pipeline.errors import ArticleError

TARGET = 0.9
ROOT = Path(__file__).resolve().parents[1]


def squash(text: str) -> str:
    return " ".join(text.split())


def missed(text: str, expected: dict[str, list[str]]) -> list[str]:
    flat = squash(text)
    return ([f"keep: {p}" for p in expected["keep"] if squash(p) not in flat]
            + [f"drop: {p}" for p in expected["drop"] if squash(p) in flat])


def rate(held: int, total: int) -> str:
    return f"{held} of {total} ({100 * held / total:.1f} %)" if total else "0 of 0"


def ours(page: Path) -> str:
    try:
        return read_article(page).plain_text()
    except ArticleError as exc:
        return f"<{exc}>"


def theirs(page: Path) -> str:
    return trafilatura.extract(page.read_bytes()) or ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=Path, default=ROOT / "tests" / "fixtures" / "pages")
    parser.add_argument("--verbose", action="store_true", help="list every expectation that does not hold")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # trafilatura logs each page it finds too short to keep

    pages = sorted(args.pages.glob("*.html"))
    if not pages:
        print(f"no pages in {args.pages}", file=sys.stderr)
        return 1
    totals = {"ours": [0, 0], "trafilatura": [0, 0]}
    times: list[float] = []
    for page in pages:
        expected = json.loads(page.with_suffix(".json").read_text(encoding="utf-8"))
        total = len(expected["keep"]) + len(expected["drop"])
        start = time.perf_counter()
        our_text = ours(page)
        times.append(time.perf_counter() - start)
        row, notes = [], []
        for name, text in (("ours", our_text), ("trafilatura", theirs(page))):
            misses = missed(text, expected)
            totals[name][0] += total - len(misses)
            totals[name][1] += total
            row.append(f"{name} {rate(total - len(misses), total):>18}")
            notes.extend(f"    {name} missed {m}" for m in misses)
        print(f"{page.name:30} " + "   ".join(row))
        if args.verbose and notes:
            print("\n".join(notes))
    held, total = totals["ours"]
    print(f"\nours:        {rate(held, total)}")
    print(f"trafilatura: {rate(*totals['trafilatura'])}  (trafilatura.extract(page), its defaults)")
    print(f"reader: median {1000 * statistics.median(times):.0f} ms a page, {len(pages)} pages")
    return 0 if held >= TARGET * total else 1


if __name__ == "__main__":
    sys.exit(main())
