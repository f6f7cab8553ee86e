"""Segments select the same subscribers on SQLite and PostgreSQL, whatever PostgreSQL's collation.

SQLite compares text byte by byte; a PostgreSQL database made with ICU or a locale such as
en_US.UTF-8 compares by language rules unless told otherwise ("Boston" < "b" there, not here).
These tests use such a database, created for the module from template0 with an ICU collation
(Debian's PostgreSQL always has them) or, failing that, a libc locale.

The property test draws expressions from the grammar and checks that three answers agree:
SQLite, PostgreSQL, and the same condition evaluated in Python over the same subscribers.
"""

from __future__ import annotations

import ast
import json
import operator
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.audience.segments import resolve
from pipeline.audience.subscribers import Changes, add, get, set_status
from pipeline.db.engine import Store
from pipeline.db.schema import subscribers
from tests.conftest import POSTGRES_URL

REQUIRED = os.environ.get("CAMPAIGN_REQUIRE_POSTGRES") == "1"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

# --- the list ------------------------------------------------------------------------------------
# Text chosen where collations disagree with byte order: case, accents, digits, empty, symbols.
TEXTS = ["", "a", "A", "b", "B", "ab", "aB", "Ab", "Bz", "austin", "Boston", "boston", "á", "Á", "Ávila",
         "é", "e", "élan", "Eton", "z", "Z", "Zürich", "zurich", "ß", "ss", "0", "09", "10", "9", " ", "a b",
         "-", "_", "~", "İ", "日本"]
ZONES = [None, "Europe/Oslo", "America/New_York", "Asia/Tokyo"]
TAGS = ["vip", "VIP", "back-pain", "é"]
MIXED: list[Any] = [None, 10, "10", 9, "9", "09", 2.5, True, False, "true", "abc", -3]
NUMBERS: list[Any] = [None, 0, 7, -1, 1980, 2.5, -0.5, 123456789012345, 1e-3]


def _people() -> list[tuple[str, Changes, bool]]:
    """One subscriber per text, the same on every database: address, what they hold, still subscribed."""
    people = []
    for i, text in enumerate(TEXTS):
        fields: dict[str, Any] = {"city": TEXTS[(i * 7 + 3) % len(TEXTS)]}
        if i % 5:
            fields["mixed"] = MIXED[i % len(MIXED)]
        if i % 4:
            fields["n"] = NUMBERS[i % len(NUMBERS)]
        if i % 3 == 0:
            fields["vip"] = i % 2 == 0
        fields = {k: v for k, v in fields.items() if v is not None}
        local = ["ana", "Bob", "cleo", "DAN", "eve", "Fay"][i % 6] + str(i)
        domain = ["example.com", "Example.org", "b.example"][i % 3]
        people.append((f"{local}@{domain}", Changes(
            first_name=text if i % 6 else None, last_name=TEXTS[(i * 5 + 1) % len(TEXTS)] if i % 4 != 1 else None,
            tags={TAGS[i % len(TAGS)], TAGS[(i // 2) % len(TAGS)]} if i % 7 else set(),
            fields=fields, timezone=ZONES[i % len(ZONES)],
            signed_up=NOW - timedelta(days=[1, 30, 90, 400, 4000][i % 5], hours=i)), i % 9 != 4))
    return people


PEOPLE = _people()


def fill(store: Store) -> Store:
    with store.transaction() as conn:
        for address, changes, subscribed in PEOPLE:
            add(conn, address, changes, "test")
            if not subscribed:
                set_status(conn, get(conn, address), "unsubscribed", "test")
    return store


def matching(store: Store, expression: str) -> list[str]:
    """Every subscriber (subscribed or not) the expression's condition selects, by address."""
    with store.reading() as conn:
        where = resolve(conn, expression, {}, now=NOW).where
        return sorted(conn.execute(sa.select(subscribers.c.email_key).where(where)).scalars())


# --- a PostgreSQL database whose default collation is not byte order ------------------------------
def _url(database: str) -> str:
    assert POSTGRES_URL is not None
    return sa.engine.make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


def _bytewise(url: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text("SELECT 'B' < 'a'")).scalar())  # true only in byte order
    finally:
        engine.dispose()


def _create_collated(admin: sa.Engine, name: str) -> tuple[str | None, str]:
    """Create database `name` with a language-aware default collation: which one, or None and why not."""
    with admin.connect() as conn:
        libc = conn.execute(sa.text(
            "SELECT collcollate FROM pg_collation WHERE collprovider = 'c' AND collencoding IN (-1, 6) "
            "AND collcollate NOT IN ('C', 'POSIX') AND lower(collcollate) NOT LIKE 'c.%' "
            "ORDER BY collcollate LIKE 'en_US%' DESC, collcollate LIMIT 1")).scalar()
    options = {"ICU en-US": "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LC_COLLATE 'C' LC_CTYPE 'C'"}
    if libc:
        options[f"libc {libc}"] = f"LC_COLLATE '{libc}' LC_CTYPE '{libc}'"
    why = "no PostgreSQL database with a collation other than C can be made here"
    for label, option in options.items():
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' {option}"))
        except sa.exc.DBAPIError as exc:
            why = f"{why}; {label}: {str(exc.orig).splitlines()[0]}"
            continue
        if not _bytewise(_url(name)):
            return label, ""
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}"'))
    return None, why


@dataclass
class Databases:
    sqlite: Store
    postgres: Store | None  # None without a PostgreSQL server
    collation: str | None  # PostgreSQL's default collation, when it is not byte order
    why: str = "needs PostgreSQL: set CAMPAIGN_TEST_POSTGRES_URL"  # why there is no collation, if there is none


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    """The list on SQLite and on a fresh PostgreSQL database with a language-aware collation.

    When the server has no collation but byte order, PostgreSQL is the test database as it is, and
    under CAMPAIGN_REQUIRE_POSTGRES=1 (as CI sets) the collation test fails instead of skipping.
    """
    sqlite = fill(Store(f"sqlite:///{tmp_path_factory.mktemp('segments') / 'test.db'}"))
    if POSTGRES_URL is None:
        yield Databases(sqlite, None, None)
        sqlite.close()
        return
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"t_collated_{uuid.uuid4().hex[:12]}"
    collation = None
    try:
        collation, why = _create_collated(admin, name)
        postgres = Store(_url(name) if collation else _schema(admin, name))
        try:
            yield Databases(sqlite, fill(postgres), collation, why)
        finally:
            postgres.close()
    finally:
        sqlite.close()
        with admin.connect() as conn:
            drop = f'DATABASE IF EXISTS "{name}" WITH (FORCE)' if collation else f'SCHEMA IF EXISTS "{name}" CASCADE'
            conn.execute(sa.text(f"DROP {drop}"))
        admin.dispose()


def _schema(admin: sa.Engine, name: str) -> str:
    """A schema of the test database, as tests/conftest.py makes for each test."""
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    assert POSTGRES_URL is not None
    url = sa.engine.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={name}"})
    return url.render_as_string(hide_password=False)


# --- the collation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("expression", [
    'city < "b"', 'last_name > "Z"', 'city >= "B" and city <= "Bz"', 'first_name < "É"', 'first_name > "a"',
    'city.startswith("b")', 'city.endswith("n")', 'last_name in ["Boston", "Zürich"]', 'city > "9"',
    'email < "C"', 'email >= "dan"', 'timezone < "B"', 'status < "u"', 'mixed > "9"', 'mixed <= "10"',
])
def test_text_compares_byte_by_byte_whatever_the_postgresql_collation(databases: Databases,
                                                                      expression: str) -> None:
    postgres = collated(databases)
    expected = evaluated(expression)
    assert matching(databases.sqlite, expression) == expected
    assert matching(postgres, expression) == expected


def test_the_collated_database_really_compares_by_language_rules(databases: Databases) -> None:
    postgres = collated(databases)
    with postgres.reading() as conn:
        assert conn.execute(sa.text("SELECT 'Boston' < 'b', 'B' < 'a'")).one() == (False, False)
        plain = conn.execute(sa.text("SELECT count(*) FROM subscribers WHERE fields ->> 'city' < 'b'")).scalar()
    assert plain != len(matching(postgres, 'city < "b"')) == len(evaluated('city < "b"'))


def collated(databases: Databases) -> Store:
    """The PostgreSQL database with a language-aware collation, or the test's skip (its failure in CI)."""
    if databases.postgres is not None and databases.collation is not None:
        return databases.postgres
    if REQUIRED:
        pytest.fail(f"CAMPAIGN_REQUIRE_POSTGRES=1 but {databases.why}", pytrace=False)
    pytest.skip(databases.why)


# --- the same conditions in Python -------------------------------------------------------------------
@dataclass(frozen=True)
class Person:
    email: str  # lower-cased, as stored for comparisons
    first_name: str | None
    last_name: str | None
    timezone: str | None
    status: str
    tags: frozenset[str]
    fields: dict[str, Any]
    signed_up: datetime

    def value(self, name: str) -> Any:
        return getattr(self, name) if name in BUILTIN else self.fields.get(name)

    def text(self, name: str) -> str | None:
        """A field as text: custom numbers and booleans as JSON writes them."""
        value = self.value(name)
        return value if value is None or isinstance(value, str) else json.dumps(value)


STATUS = {True: "subscribed", False: "unsubscribed"}
BUILTIN = {"email", "first_name", "last_name", "timezone", "status", "tags", "signed_up"}
PERSONS = [Person(address.lower(), c.first_name, c.last_name, c.timezone, STATUS[subscribed], frozenset(c.tags),
                  c.fields, c.signed_up or NOW) for address, c, subscribed in PEOPLE]
OPS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge}
FLIPPED = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE, ast.Eq: ast.Eq, ast.NotEq: ast.NotEq}


def evaluated(expression: str) -> list[str]:
    """The addresses the expression selects, worked out in Python: what both databases must answer."""
    body = ast.parse(expression, mode="eval").body
    return sorted(p.email for p in PERSONS if truth(body, p))


def truth(node: ast.expr, person: Person) -> bool:
    if isinstance(node, ast.BoolOp):
        results = [truth(v, person) for v in node.values]
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not truth(node.operand, person)
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        return all(pair(operands[i], op, operands[i + 1], person) for i, op in enumerate(node.ops))
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
    name, needle = node.func.value.id, literal(node.args[0])
    text = person.text(name)
    needle = needle.lower() if name == "email" else needle
    return text is not None and getattr(text, node.func.attr)(needle)


def literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        value = literal(node.args[0])
        return NOW - timedelta(days=value) if node.func.id == "days_ago" else when(value)
    if isinstance(node, ast.Name) and node.id == "None":
        return None
    return ast.literal_eval(node)


def when(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def pair(left: ast.expr, op: ast.cmpop, right: ast.expr, person: Person) -> bool:
    if isinstance(op, (ast.In, ast.NotIn)):
        return member(left, right, person) is isinstance(op, ast.In)
    kind: type[ast.cmpop] = {ast.Is: ast.Eq, ast.IsNot: ast.NotEq}.get(type(op), type(op))
    if isinstance(left, ast.Name) and left.id != "None":
        name, value = left.id, literal(right)
    else:
        assert isinstance(right, ast.Name)
        name, value, kind = right.id, literal(left), FLIPPED[kind]
    if kind is ast.NotEq:  # != is always the opposite of ==, absent values included
        return not compare(name, ast.Eq, value, person)
    return compare(name, kind, value, person)


def compare(name: str, kind: type[ast.cmpop], value: Any, person: Person) -> bool:
    test = OPS[kind]
    if value is None:
        return person.value(name) is None
    if name == "signed_up":
        return test(person.signed_up, value if isinstance(value, datetime) else when(value))
    if isinstance(value, bool):
        return person.value(name) is value
    if is_number(value):
        found = person.value(name)
        return is_number(found) and test(found, value)
    text = person.text(name)
    return text is not None and test(text, value.lower() if name == "email" else value)


def member(left: ast.expr, right: ast.expr, person: Person) -> bool:
    if isinstance(right, ast.Name) and right.id == "tags":
        return literal(left) in person.tags
    if isinstance(right, ast.Name):
        text, needle = person.text(right.id), literal(left)
        return text is not None and (needle.lower() if right.id == "email" else needle) in text
    assert isinstance(left, ast.Name)
    values = literal(right)
    if all(isinstance(v, str) for v in values):
        text = person.text(left.id)
        return text is not None and text in ([v.lower() for v in values] if left.id == "email" else values)
    found = person.value(left.id)
    return is_number(found) and found in values


# --- expressions drawn from the grammar ----------------------------------------------------------------
def quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a Python string literal too


TEXT_FIELDS = ["first_name", "last_name", "city", "mixed", "email", "timezone", "status"]
NUMBER_FIELDS = ["n", "mixed"]
SYMBOLS = ["==", "!=", "<", "<=", ">", ">="]
NEEDLES = st.sampled_from([*TEXTS, "c", "bz", "BOSTON", "ab ", "Example", "@b.example", "subscribed", "Europe/",
                           "true", "2.5", "0.001", "-3"])
LITERALS = st.sampled_from([0, 1, -1, 7, 9, 10, 2.5, -0.5, 1980, 0.001, 123456789012345, 9223372036854775807,
                            -9223372036854775808, 1e300, -3])


def _text_comparison(field: str, symbol: str, needle: str, flip: bool) -> str:
    return f"{quoted(needle)} {symbol} {field}" if flip else f"{field} {symbol} {quoted(needle)}"


ATOMS = st.one_of(
    st.builds(_text_comparison, st.sampled_from(TEXT_FIELDS), st.sampled_from(SYMBOLS), NEEDLES, st.booleans()),
    st.builds("{}.{}({})".format, st.sampled_from(TEXT_FIELDS), st.sampled_from(["startswith", "endswith"]),
              NEEDLES.map(quoted)),
    st.builds("{} in {}".format, NEEDLES.map(quoted), st.sampled_from(TEXT_FIELDS)),
    st.builds("{} {} [{}]".format, st.sampled_from(TEXT_FIELDS), st.sampled_from(["in", "not in"]),
              st.lists(NEEDLES.map(quoted), min_size=1, max_size=4).map(", ".join)),
    st.builds("{} {} {}".format, st.sampled_from(NUMBER_FIELDS), st.sampled_from(SYMBOLS), LITERALS.map(repr)),
    st.builds("{} <= {} < {}".format, LITERALS.map(repr), st.sampled_from(NUMBER_FIELDS), LITERALS.map(repr)),
    st.builds("{} {} [{}]".format, st.sampled_from(NUMBER_FIELDS), st.sampled_from(["in", "not in"]),
              st.lists(LITERALS.map(repr), min_size=1, max_size=4).map(", ".join)),
    st.builds("{} {} tags".format, st.sampled_from([*TAGS, "Vip", "back"]).map(quoted),
              st.sampled_from(["in", "not in"])),
    st.builds("{} {} {}".format, st.sampled_from(["vip", "mixed"]), st.sampled_from(["==", "!="]),
              st.sampled_from(["True", "False"])),
    st.builds("{} {}".format, st.sampled_from(["first_name", "last_name", "timezone", "city", "mixed", "n", "vip"]),
              st.sampled_from(["== None", "!= None", "is None", "is not None"])),
    st.builds("signed_up {} {}".format, st.sampled_from(SYMBOLS), st.one_of(
        st.sampled_from([0, 1, 30, 89.5, 90, 400, 36_500]).map("days_ago({})".format),
        st.sampled_from(["2026-01-01", "2025-10-24T12:00:00", "2026-11-22T12:00:00+00:00"]).map(
            'date("{}")'.format))),
)
EXPRESSIONS = st.recursive(ATOMS, lambda inner: st.one_of(
    inner.map("not ({})".format),
    st.builds("({}) and ({})".format, inner, inner),
    st.builds("({}) or ({})".format, inner, inner),
), max_leaves=6)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(expression=EXPRESSIONS)
def test_every_expression_selects_the_same_subscribers_on_sqlite_postgresql_and_in_python(
        databases: Databases, expression: str) -> None:
    expected = evaluated(expression)
    assert matching(databases.sqlite, expression) == expected
    if databases.postgres is not None:
        assert matching(databases.postgres, expression) == expected
