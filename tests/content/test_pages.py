"""Saved pages of the kinds people really paste in: does the article come through, and only it?

Each page in tests/fixtures/pages has a JSON file of passages the newsletter must keep (the
article's words, its captions, its closing call to book) and passages it must drop (menus,
"Share this", related posts, tags, comments, cookie banners, footers). benchmarks/readers.py
prints the same hold rate for trafilatura's own plain extraction of the same pages.
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import pytest

from pipeline.content.readers import read_article
from tests.conftest import FIXTURES

PAGES = FIXTURES / "pages"
TARGET = 0.9  # of all expectations over all pages
MISSES_PER_PAGE = 1


def squash(text: str) -> str:
    return " ".join(text.split())


def expectations(page: Path) -> dict[str, list[str]]:
    return json.loads(page.with_suffix(".json").read_text(encoding="utf-8"))


def misses(text: str, expected: dict[str, list[str]]) -> list[str]:
    """The expectations that do not hold for this text, as "keep: ..." and "drop: ..."."""
    flat = squash(text)
    return ([f"keep: {p}" for p in expected["keep"] if squash(p) not in flat]
            + [f"drop: {p}" for p in expected["drop"] if squash(p) in flat])


@cache
def result(name: str) -> tuple[int, int, tuple[str, ...]]:
    """Expectations held, expectations in all, and the misses, for one page."""
    page = PAGES / name
    expected = expectations(page)
    missed = misses(read_article(page).plain_text(), expected)
    total = len(expected["keep"]) + len(expected["drop"])
    return total - len(missed), total, tuple(missed)


NAMES = sorted(p.name for p in PAGES.glob("*.html"))


def test_there_are_enough_pages_with_expectations() -> None:
    assert len(NAMES) >= 8
    for name in NAMES:
        expected = expectations(PAGES / name)
        assert len(expected["keep"]) >= 5 and len(expected["drop"]) >= 5, name


@pytest.mark.parametrize("name", NAMES)
def test_every_expectation_of_a_saved_page(name: str) -> None:
    held, total, missed = result(name)  # reading never fails: every page has an article
    if missed:
        warnings.warn(f"{name}: {held} of {total} expectations hold; missed {list(missed)}", stacklevel=1)
    assert len(missed) <= MISSES_PER_PAGE, f"{name}: {held} of {total} hold; missed {list(missed)}"


def test_hold_rate_over_all_pages() -> None:
    held = sum(result(name)[0] for name in NAMES)
    total = sum(result(name)[1] for name in NAMES)
    rate = held / total
    print(f"saved pages: {held} of {total} ({rate * 100:.1f} %) expectations hold")
    assert rate >= TARGET, f"{held} of {total} ({rate * 100:.1f} %) expectations hold; the target is {TARGET:.0%}"
