"""Segment expressions past the sizes and ranges the databases take: one-line errors, never tracebacks.

Each limit is tested at its edge on SQLite and PostgreSQL: the largest accepted expression runs,
the next one is refused with a message naming the limit and, where there is one, the column.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from pipeline.audience.segments import count, resolve
from pipeline.audience.subscribers import Changes, add
from pipeline.db.engine import Store
from pipeline.db.schema import subscribers
from pipeline.errors import SegmentError

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LIST_OF_1000 = "[" + ", ".join(str(i) for i in range(1000)) + "]"
SAVED = {"thousand": f"n in {LIST_OF_1000}", "cities": 'city in [' + ", ".join(['"x"'] * 1000) + "]",
         "deep": "not (" * 16 + 'city == "Oslo"' + ")" * 16, "ten": " or ".join(['"t" in tags'] * 10)}


@pytest.fixture
def listed(store: Store) -> Store:
    with store.transaction() as conn:
        add(conn, "ana@example.com", Changes(first_name="Ana", tags={"t"}, fields={"city": "Oslo", "n": 7},
                                             signed_up=datetime(2026, 10, 1, tzinfo=UTC)), "test")
        add(conn, "ben@example.com", Changes(fields={"city": "Bergen", "n": 1000},
                                             signed_up=datetime(2025, 1, 1, tzinfo=UTC)), "test")
    return store


def run(store: Store, expression: str, saved: dict[str, str] | None = None) -> int:
    with store.reading() as conn:
        return count(conn, resolve(conn, expression, {**SAVED, **(saved or {})}, now=NOW))


def refused(store: Store, expression: str, saved: dict[str, str] | None = None) -> str:
    with store.reading() as conn, pytest.raises(SegmentError) as caught:
        resolve(conn, expression, {**SAVED, **(saved or {})}, now=NOW)
    message = str(caught.value)
    assert "\n" not in message
    return message


def depth(expression: str) -> int:
    """How deeply the expression nests, counted as the compiler counts it (one level per node)."""
    deepest, stack = 0, [(ast.parse(expression, mode="eval").body, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((c, level + 1) for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr))
    return deepest


# --- size ---------------------------------------------------------------------------------------
def test_long_expressions_are_refused_before_parsing(listed: Store) -> None:
    padded = 'city == "Oslo"' + " " * 9_980 + "or True"
    assert len(padded) == 10_001
    assert refused(listed, padded) == ("segment expression is too long: 10,001 characters "
                                       "(the limit is 10,000)")
    assert run(listed, padded[:-8] + "or True") == 2


@pytest.mark.parametrize("term", ['"t" in tags', 'city == "Oslo"', 'first_name < "B"', "n > 3",
                                  'city.startswith("O")', "signed_up > days_ago(90)", "True", 'segment("ten")'])
def test_conditions_are_counted_over_the_whole_expression(listed: Store, term: str) -> None:
    accepted = " or ".join([term] * (25 if term.startswith("segment") else 250))
    assert run(listed, accepted) in (1, 2)
    assert refused(listed, accepted + ' or city == "Oslo"') == (
        f"segment expression, column {len(accepted) + 5}: too many conditions (the limit is 250 in all; "
        "a list such as city in [\"a\", \"b\"] counts as one)")


def test_a_thousand_and_one_ors_are_a_clean_error_not_a_sqlite_traceback(listed: Store) -> None:
    terms = [f"n>{i % 10}" for i in range(1_001)]  # short terms, so the length limit does not come first
    column = len(" or ".join(terms[:250])) + 5
    assert refused(listed, " or ".join(terms)) == (
        f"segment expression, column {column}: too many conditions (the limit is 250 in all; "
        "a list such as city in [\"a\", \"b\"] counts as one)")


def test_chained_comparisons_count_each_comparison(listed: Store) -> None:
    assert run(listed, " and ".join(["0 < n < 2000"] * 125)) == 2
    assert "too many conditions" in refused(listed, " and ".join(["0 < n < 2000"] * 125) + " and n > 0")


def test_lists_hold_at_most_a_thousand_items(listed: Store) -> None:
    assert run(listed, f"n in {LIST_OF_1000}") == 1
    assert run(listed, "city in [" + ", ".join(f'"c{i}"' for i in range(999)) + ', "Bergen"]') == 1
    assert refused(listed, "n in [" + ", ".join(["1"] * 1_001) + "]") == (
        "segment expression, column 6: a list may hold at most 1,000 items (this one has 1,001)")


def test_list_items_are_counted_over_saved_segments_too(listed: Store) -> None:
    five = " or ".join(['segment("thousand")'] * 5)
    assert run(listed, five) == 1
    assert refused(listed, five + " or n in [1]") == (
        f"segment expression, column {len(five) + 10}: too many list items (the limit is 5,000 in all)")
    assert refused(listed, " or ".join(['segment("thousand")'] * 6)) == (
        "segment 'thousand', column 6: too many list items (the limit is 5,000 in all)")


def test_a_hundred_thousand_item_list_is_refused_not_sent_to_postgresql(listed: Store) -> None:
    expression = "n in [" + ", ".join(str(i) for i in range(100_001)) + "]"
    assert refused(listed, expression) == (
        f"segment expression is too long: {len(expression):,} characters (the limit is 10,000)")


def bound_parameters(conn: sa.Connection, expression: str) -> int:
    segment = resolve(conn, expression, SAVED, now=NOW)
    query = sa.select(sa.func.count()).select_from(subscribers).where(segment.recipients)
    compiled = query.compile(conn, compile_kwargs={"render_postcompile": True})
    return len(compiled.positiontup or ()) if compiled.positional else len(compiled.params)


def test_the_largest_accepted_expressions_stay_far_below_the_parameter_limits(listed: Store) -> None:
    # Five saved lists of 1,000 and 245 custom-field comparisons, the kind that binds the most.
    expression = " or ".join(['segment("cities")'] * 5 + ['city <= "x"'] * 245)
    with listed.reading() as conn:
        assert bound_parameters(conn, expression) < 10_000  # PostgreSQL allows 65,535; SQLite 32,766
        assert count(conn, resolve(conn, expression, SAVED, now=NOW)) == 2


# --- nesting ------------------------------------------------------------------------------------
NESTINGS: dict[str, Callable[[int], str]] = {
    "and/or": lambda n: "".join(f'"x" in city {("or", "and")[i % 2]} (' for i in range(n)) + 'city == "O"' + ")" * n,
    "not/or": lambda n: "".join('not (n < 3 or ' for _ in range(n)) + "n > 3" + ")" * n,
    "not/not/and": lambda n: "".join('not (not (first_name.endswith("a") and ' for _ in range(n))
                                     + '"t" in tags' + "))" * n,
    "left and/or": lambda n: "(" * n + "n > 1" + "".join(f" {('or', 'and')[i % 2]} n < 5)" for i in range(n)),
    "saved": lambda n: "not (" * n + 'segment("deep")' + ")" * n,
}


@pytest.mark.parametrize("pattern", NESTINGS)
def test_the_deepest_accepted_nesting_runs_and_one_more_level_is_refused(listed: Store, pattern: str) -> None:
    make = NESTINGS[pattern]
    accepted = max(n for n in range(30) if not _refused(listed, make(n)))
    assert run(listed, make(accepted)) in (0, 1, 2)
    assert refused(listed, make(accepted + 1)).endswith(": nested too deeply (the limit is 20 levels)")
    if pattern != "saved":
        assert depth(make(accepted)) <= 20 < depth(make(accepted + 1))


def _refused(store: Store, expression: str) -> bool:
    try:
        run(store, expression)
    except SegmentError:
        return True
    return False


@pytest.mark.parametrize(("expression", "message"), [
    ("not " * 900 + 'city == "Oslo"', "segment expression, column 81: nested too deeply (the limit is 20 levels)"),
    ("n > " + "-" * 5_000 + "1", "segment expression: nested too deeply (the limit is 20 levels)"),
    ("(" * 300 + "True" + ")" * 300, "segment expression, column 201: nested too deeply (the limit is 20 levels)"),
    ("n in " + "[" * 150 + "]" * 150, "segment expression, column 25: nested too deeply (the limit is 20 levels)"),
])
def test_deep_nesting_is_refused_before_python_or_the_database_overflows(listed: Store, expression: str,
                                                                         message: str) -> None:
    assert refused(listed, expression) == message


def test_a_long_chain_of_saved_segments_counts_as_nesting(listed: Store) -> None:
    chain = {f"s{i}": f'segment("s{i + 1}")' for i in range(40)} | {"s40": "True"}
    # s19's segment() call is level 20 of the whole expression; the name and argument inside it 21.
    assert refused(listed, "s0", chain) == "segment 's19', column 1: nested too deeply (the limit is 20 levels)"
    assert run(listed, "s30", chain) == 2


# --- values -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("expression", "message"), [
    ("n < 99999999999999999999999999", ("segment expression, column 5: 99999999999999999999999999 is out of range "
                                        "(whole numbers go from -9223372036854775808 to 9223372036854775807)")),
    ("n < 9223372036854775808", "segment expression, column 5: 9223372036854775808 is out of range"),
    ("n > -9223372036854775809", "segment expression, column 5: -9223372036854775809 is out of range"),
    ("n in [1, --9223372036854775808]", "segment expression, column 10: --9223372036854775808 is out of range"),
    ("n < 1e309", "segment expression, column 5: 1e309 is out of range (numbers must be finite)"),
    ("n > -1e400", "segment expression, column 5: -1e400 is out of range (numbers must be finite)"),
    ("signed_up > days_ago(1e9)", ("segment expression, column 22: days_ago() takes a number of days from 0 to "
                                   "36,500, such as days_ago(90)")),
    ("signed_up > days_ago(36501)", "segment expression, column 22: days_ago() takes a number of days from 0"),
    ("signed_up > days_ago(-1)", "segment expression, column 22: days_ago() takes a number of days from 0"),
    ('signed_up > date("0001-01-01")', ("segment expression, column 18: '0001-01-01' is out of range (dates go "
                                        "from 1900-01-01 to 2199-12-31)")),
    ('signed_up < date("9999-12-31T23:00:00-05:00")', "segment expression, column 18: '9999-12-31T23:00:00-05"),
    ('signed_up < "2200-01-01"', "segment expression, column 13: '2200-01-01' is out of range"),
    ('city == "\\x00"', ("segment expression, column 9: text may not contain '\\x00' (NUL characters and lone "
                         "surrogates cannot be stored)")),
    ('"a\\0" in tags', "segment expression, column 1: text may not contain '\\x00'"),
    ('first_name.startswith("\\ud800")', "segment expression, column 23: text may not contain '\\ud800'"),
    ('city in ["Oslo", "\\x00"]', "segment expression, column 18: text may not contain '\\x00'"),
    ('city == "Oslo" or city == "\x00"', "segment expression, column 28: text may not contain '\\x00'"),
])
def test_values_the_databases_cannot_take_are_refused_with_their_column(listed: Store, expression: str,
                                                                        message: str) -> None:
    assert refused(listed, expression).startswith(message)


@pytest.mark.parametrize(("expression", "expected"), [
    ("n < 9223372036854775807", 2),
    ("n > -9223372036854775808", 2),
    ("n in [-9223372036854775808, 9223372036854775807, 7]", 1),
    ("n < 1e308", 2),
    ("signed_up > days_ago(36500)", 2),
    ("signed_up > days_ago(0)", 0),
    ('signed_up > date("1900-01-01") and signed_up < date("2199-12-31T23:00:00-05:00")', 2),
    ('city != "\\x01"', 2),
])
def test_values_at_the_edges_of_their_ranges_work(listed: Store, expression: str, expected: int) -> None:
    assert run(listed, expression) == expected


def test_python_s_warnings_about_the_source_are_not_printed(listed: Store) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run(listed, 'n == 7and city != "\\d"') == 1  # "invalid decimal literal", "invalid escape sequence"


def test_limits_are_checked_in_saved_segments_too(listed: Store) -> None:
    assert refused(listed, "huge", {"huge": "n < 1e999"}) == (
        "segment 'huge', column 5: 1e999 is out of range (numbers must be finite)")
