"""Segment expressions: a safe subset of Python, parsed with `ast` and compiled to a SQL WHERE clause.

No user value is ever put into SQL text: every literal becomes a bound parameter, and nothing is
evaluated. The same expression gives the same subscribers on SQLite and PostgreSQL: absent
values compare like Python's None (``city != "Portland"`` includes people with no city), text
compares byte by byte (code point order, whatever the database's collation), and e-mail
comparisons ignore case. Sizes and values are bounded (see segment_limits).

    "back-pain" in tags and city == "San Francisco"
    signed_up >= days_ago(90) and not (birth_year < 1960 or "pregnant" in tags)
    email.endswith("@example.com") or segment("new-patients")
    opened("back-pain") and not clicked("back-pain", "https://clinic.example/book")
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from pipeline.audience.segment_columns import Columns
from pipeline.audience.segment_compare import Comparisons, Field
from pipeline.audience.segment_limits import (
    TOO_DEEP,
    Budget,
    date_problem,
    days_problem,
    nesting,
    number_problem,
    text_problem,
    too_long,
    unstorable,
)
from pipeline.audience.values import BUILTIN_FIELDS
from pipeline.db.schema import subscribers
from pipeline.delivery.ledger import received_by
from pipeline.engagement.segments import FUNCTIONS as ENGAGEMENT
from pipeline.engagement.segments import condition as engaged_condition
from pipeline.engagement.segments import problem as engaged_problem
from pipeline.errors import SegmentError
from pipeline.settings.tables import SLUG

FUNCTIONS = ("days_ago", "date", "segment", "received", "opened", "clicked")
METHODS = ("startswith", "endswith")


class _Compiler(Comparisons):
    def __init__(self, source: str, name: str | None, dialect: str, saved: Mapping[str, str],
                 fields: set[str], now: datetime, stack: tuple[str, ...], budget: Budget, base: int) -> None:
        self.source = source.strip()
        self.saved_name = name
        self.dialect = dialect
        self.saved = saved
        self.fields = fields
        self.now = now
        self.stack = stack
        self.budget = budget  # shared with the saved segments this one includes
        self.base = base  # how deep the segment() call this expression stands for sits
        self.calls: dict[ast.expr, int] = {}
        self.sql = Columns(dialect)

    # -- errors ------------------------------------------------------------------------------
    def where(self) -> str:
        return f"segment {self.saved_name!r}" if self.saved_name else "segment expression"

    def fail(self, node: ast.AST | None, message: str) -> SegmentError:
        if node is not None and hasattr(node, "col_offset"):
            lines = self.source.split("\n")
            line = getattr(node, "lineno", 1)
            text = lines[line - 1] if line <= len(lines) else ""
            column = len(text.encode("utf-8")[: node.col_offset].decode("utf-8", errors="ignore")) + 1
            return self.located(line, column, message)
        return SegmentError(f"{self.where()}: {message}")

    def located(self, line: int, column: int, message: str) -> SegmentError:
        where = f", line {line}, column {column}" if "\n" in self.source else f", column {column}"
        return SegmentError(f"{self.where()}{where}: {message}")

    def at(self, index: int, message: str) -> SegmentError:
        """An error at a character of the source, for problems found before parsing."""
        line_start = self.source.rfind("\n", 0, index) + 1
        return self.located(self.source.count("\n", 0, index) + 1, index - line_start + 1, message)

    def known(self) -> str:
        return ", ".join([*BUILTIN_FIELDS, *sorted(self.fields)])

    # -- entry -------------------------------------------------------------------------------
    def compile(self) -> sa.ColumnElement[bool]:
        tree = self.parse()
        too_deep, self.calls = nesting(tree.body, self.base)
        if too_deep is not None:
            raise self.fail(too_deep, TOO_DEEP)
        result = self.node(tree.body)
        if isinstance(result, bool):
            return sa.true() if result else sa.false()
        if not isinstance(result, sa.ColumnElement):
            raise self.fail(tree.body, "a segment must be a condition, such as city == \"Portland\" "
                                       "or \"back-pain\" in tags")
        return result

    def parse(self) -> ast.Expression:
        if not self.source:
            raise SegmentError(f"{self.where()} is empty")
        cached = self.budget.trees.get(self.saved_name) if self.saved_name else None
        if cached is not None:
            return cached
        problem = too_long(self.source)
        if problem:
            raise SegmentError(f"{self.where()} {problem}")
        bad = unstorable(self.source)  # ast.parse itself fails on NUL and on lone surrogates
        if bad is not None:
            raise self.at(bad, text_problem(self.source[bad]) or "")
        try:
            with warnings.catch_warnings():  # "invalid escape sequence" and the like, printed otherwise
                warnings.simplefilter("ignore")
                tree = ast.parse(self.source, mode="eval")
        except SyntaxError as exc:
            deep = "too many nested parentheses" in (exc.msg or "")
            raise self.located(exc.lineno or 1, exc.offset or 1,
                               TOO_DEEP if deep else f"invalid syntax ({exc.msg})") from None
        except (RecursionError, MemoryError):  # the parser's own limits on nesting
            raise SegmentError(f"{self.where()}: {TOO_DEEP}") from None
        if self.saved_name:
            self.budget.trees[self.saved_name] = tree
        return tree

    def count(self, node: ast.expr) -> None:
        """One more condition, counted over the whole expression and the saved segments it includes."""
        problem = self.budget.condition()
        if problem:
            raise self.fail(node, problem)

    def number(self, value: float, node: ast.expr) -> float:
        problem = number_problem(value)
        if problem:
            raise self.fail(node, f"{ast.get_source_segment(self.source, node) or value} {problem}")
        return value

    # -- nodes -------------------------------------------------------------------------------
    def node(self, node: ast.expr) -> Any:
        if isinstance(node, ast.BoolOp):
            parts = [self.condition(v) for v in node.values]
            return sa.and_(*parts) if isinstance(node.op, ast.And) else sa.or_(*parts)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return sa.not_(self.condition(node.operand))
            if isinstance(node.op, (ast.USub, ast.UAdd)):
                # A literal's range is checked once its sign is known: -9223372036854775808 fits.
                operand = node.operand
                value = operand.value if isinstance(operand, ast.Constant) else self.node(operand)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    return self.number(-value if isinstance(node.op, ast.USub) else value, node)
            raise self.fail(node, "only numbers can be negative")
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, str):
                problem = text_problem(value)
                if problem:
                    raise self.fail(node, problem)
                return value
            if isinstance(value, (int, float)):
                return self.number(value, node)
            if value is None:
                return value
            raise self.fail(node, f"{type(value).__name__} values are not allowed")
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            problem = self.budget.items(len(node.elts))
            if problem:
                raise self.fail(node, problem)
            values = [self.node(e) for e in node.elts]
            if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
                raise self.fail(node, "a list may hold only text and numbers")
            return tuple(values)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Attribute):
            raise self.fail(node, "attribute access is not allowed (only .startswith() and .endswith() calls)")
        kind = {ast.Lambda: "lambda", ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
                ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator", ast.Subscript: "indexing",
                ast.BinOp: "arithmetic", ast.IfExp: "an if expression", ast.NamedExpr: "assignment",
                ast.Dict: "a dictionary", ast.JoinedStr: "an f-string", ast.Await: "await",
                ast.Starred: "unpacking"}.get(type(node), type(node).__name__)
        raise self.fail(node, f"{kind} is not allowed in a segment expression")

    def condition(self, node: ast.expr) -> sa.ColumnElement[bool]:
        value = self.node(node)
        if isinstance(value, bool):
            self.count(node)
            return sa.true() if value else sa.false()
        if not isinstance(value, sa.ColumnElement):
            raise self.fail(node, "expected a condition here, such as status == \"subscribed\"")
        return value

    def name(self, node: ast.Name) -> Any:
        if node.id.startswith("_"):
            raise self.fail(node, f"{node.id!r} is not allowed: names starting with '_' are refused")
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        if node.id in BUILTIN_FIELDS or node.id in self.fields:
            return Field(node.id)
        raise self.fail(node, f"unknown field {node.id!r} (known: {self.known()})")

    def call(self, node: ast.Call) -> Any:
        if isinstance(node.func, ast.Name) and node.func.id in ENGAGEMENT:
            return self.engagement(node, node.func.id)
        if node.keywords:
            raise self.fail(node, "keyword arguments are not allowed")
        if isinstance(node.func, ast.Attribute):
            return self.method(node)
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, "only days_ago(), date(), segment(), received(), opened() and clicked() can be called")
        name = node.func.id
        if name.startswith("_"):
            raise self.fail(node.func, f"{name!r} is not allowed: names starting with '_' are refused")
        if name not in FUNCTIONS:
            raise self.fail(node.func, f"{name}() is not allowed (known functions: "
                                       f"{', '.join(f + '()' for f in FUNCTIONS)})")
        args = [self.node(a) for a in node.args]
        if len(args) != 1:
            raise self.fail(node, f"{name}() takes exactly one argument")
        (arg,) = args
        if name == "days_ago":
            problem = days_problem(arg)
            if problem:
                raise self.fail(node.args[0], problem)
            return self.now - timedelta(days=arg)
        if name == "date":
            return self.parse_date(arg, node.args[0])
        if name == "received":
            if not isinstance(arg, str) or not SLUG.match(arg):
                raise self.fail(node.args[0], 'received() takes a campaign name in quotes, such as "back-pain"')
            return subscribers.c.id.in_(received_by(arg))
        return self.saved_segment(arg, node.args[0], self.calls[node])

    def engagement(self, node: ast.Call, name: str) -> sa.ColumnElement[bool]:
        """opened() and clicked(): readers who did, as tracking recorded it (engagement.segments)."""
        self.count(node)
        args = [self.node(a) for a in node.args]
        keywords = {k.arg: self.node(k.value) for k in node.keywords}
        wrong = engaged_problem(name, args, keywords)
        if wrong is not None:
            at, message = wrong
            raise self.fail(node if at is None else [*node.args, *(k.value for k in node.keywords)][at], message)
        return engaged_condition(name, args, keywords)

    def method(self, node: ast.Call) -> sa.ColumnElement[bool]:
        assert isinstance(node.func, ast.Attribute)
        self.count(node)
        method = node.func.attr
        target = self.node(node.func.value)
        if method.startswith("_") or method not in METHODS:
            at = ast.Name(method, lineno=node.func.end_lineno, col_offset=(node.func.end_col_offset or 0) - len(method))
            raise self.fail(at, f".{method}() is not allowed (only .startswith() and .endswith())")
        if not isinstance(target, Field) or target.name in ("tags", "signed_up"):
            raise self.fail(node.func.value, f".{method}() works on text fields such as email or city")
        args = [self.node(a) for a in node.args]
        if len(args) != 1 or not isinstance(args[0], str):
            raise self.fail(node, f".{method}() takes one piece of text")
        column, needle = self.text(target, args[0], node)
        return self.guard(target, self.sql.affix(column, needle, method == "startswith"))

    def saved_segment(self, name: Any, node: ast.expr, depth: int) -> sa.ColumnElement[bool]:
        if not isinstance(name, str) or name not in self.saved:
            known = ", ".join(sorted(self.saved)) or "none saved in campaign.toml"
            raise self.fail(node, f"no saved segment {name!r} (known: {known})")
        if name in self.stack:
            chain = " -> ".join([*self.stack, name])
            raise self.fail(node, f"saved segments refer to each other in a loop: {chain}")
        return _Compiler(self.saved[name], name, self.dialect, self.saved, self.fields, self.now,
                         (*self.stack, name), self.budget, depth).compile()

    def parse_date(self, value: Any, node: ast.expr) -> datetime:
        if isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                try:
                    parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
                except ValueError:
                    raise self.fail(node, f"{value!r} is not a date like \"2026-03-01\"") from None
            problem = date_problem(parsed, value)
            if problem:
                raise self.fail(node, problem)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
        raise self.fail(node, "expected a date like \"2026-03-01\" or days_ago(30)")


def compile_segment(expression: str, *, dialect: str, saved: Mapping[str, str] | None = None,
                    fields: Iterable[str] = (), now: datetime | None = None,
                    name: str | None = None) -> sa.ColumnElement[bool]:
    """The WHERE clause for an expression (without the subscribed-only rule; see Segment).

    `name` is the saved segment's name when the expression is one, for messages and loops.
    """
    compiler = _Compiler(expression, name, dialect, saved or {}, set(fields), now or datetime.now(UTC),
                         (name,) if name else (), Budget(), 0)
    return compiler.compile()
