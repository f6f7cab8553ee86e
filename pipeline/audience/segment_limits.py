"""How large a segment expression may be, and which values it may hold.

The limits keep every accepted expression, saved segments included, well inside what Python's
parser and both databases take, so a mistake or a hostile expression is a one-line error rather
than a traceback from deep inside SQLite, PostgreSQL or the interpreter:

- SQLite refuses an expression tree more than 1,000 deep ("Expression tree is too large"); a chain
  of ``a or b or ...`` is a tree as deep as it has terms, so conditions stop at 250.
- SQLite's parser stack (100 entries) overflows at about 33 levels of alternating ``and``/``or``
  in parentheses, each level taking three entries; nesting stops at 20 levels, which also keeps
  Python's own recursion far from its limit.
- PostgreSQL binds at most 65,535 parameters a statement: lists stop at 1,000 items, 5,000 in all,
  which with 250 conditions stays under 10,000 parameters.
- SQLite integers are signed 64-bit; PostgreSQL refuses text with NUL in it, and a lone surrogate
  cannot be written as UTF-8 for either. Infinity is refused too: no field can hold it.

The checks return what is wrong as a message (None when nothing is); the compiler adds the column.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_LENGTH = 10_000
MAX_DEPTH = 20
MAX_CONDITIONS = 250
MAX_LIST = 1_000
MAX_VALUES = 5_000
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
MAX_DAYS = 36_500
FIRST_YEAR, LAST_YEAR = 1900, 2199

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL, and the halves of surrogate pairs

TOO_DEEP = f"nested too deeply (the limit is {MAX_DEPTH} levels)"
DAYS = f"days_ago() takes a number of days from 0 to {MAX_DAYS:,}, such as days_ago(90)"


def too_long(source: str) -> str | None:
    if len(source) > MAX_LENGTH:
        return f"is too long: {len(source):,} characters (the limit is {MAX_LENGTH:,})"
    return None


def nesting(body: ast.expr, base: int) -> tuple[ast.expr | None, dict[ast.expr, int]]:
    """The first node nested deeper than the limit (or None), and how deep each call sits.

    The body is one level below `base` (the depth of the segment() call it replaces, 0 at the top),
    and every node inside another is one level further down. Walked without recursion, since the
    tree may be deeper than Python's recursion allows.
    """
    calls: dict[ast.expr, int] = {}
    stack: list[tuple[ast.AST, int]] = [(body, base + 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.expr) and depth > MAX_DEPTH:
            return node, calls
        if isinstance(node, ast.Call):
            calls[node] = depth
        children = list(ast.iter_child_nodes(node))
        stack.extend((c, depth + 1 if isinstance(c, ast.expr) else depth) for c in reversed(children))
    return None, calls


def number_problem(value: Any) -> str | None:
    """What is wrong with a number, to follow the number as written."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not MIN_INT <= value <= MAX_INT:
        return f"is out of range (whole numbers go from {MIN_INT} to {MAX_INT})"
    if isinstance(value, float) and not math.isfinite(value):
        return "is out of range (numbers must be finite)"
    return None


def unstorable(text: str) -> int | None:
    """Where the text holds NUL (which PostgreSQL refuses in text) or a lone surrogate (not UTF-8), if it does."""
    found = _UNSTORABLE.search(text)
    return found.start() if found else None


def text_problem(value: str) -> str | None:
    at = unstorable(value)
    if at is None:
        return None
    return f"text may not contain {value[at]!r} (NUL characters and lone surrogates cannot be stored)"


def days_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_DAYS:
        return DAYS
    return None


def date_problem(value: datetime, text: str) -> str | None:
    # The local date is checked before any conversion to UTC, which could overflow near year 1 or 9999.
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        return f"{text!r} is out of range (dates go from {FIRST_YEAR}-01-01 to {LAST_YEAR}-12-31)"
    return None


@dataclass
class Budget:
    """What one expression uses, counted over every saved segment it includes."""

    conditions: int = 0
    values: int = 0
    trees: dict[str, ast.Expression] = field(default_factory=dict)  # saved segments, parsed once

    def condition(self) -> str | None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            return (f"too many conditions (the limit is {MAX_CONDITIONS} in all; "
                    "a list such as city in [\"a\", \"b\"] counts as one)")
        return None

    def items(self, size: int) -> str | None:
        if size > MAX_LIST:
            return f"a list may hold at most {MAX_LIST:,} items (this one has {size:,})"
        self.values += size
        if self.values > MAX_VALUES:
            return f"too many list items (the limit is {MAX_VALUES:,} in all)"
        return None
