"""Comparisons and membership in segment expressions, compiled to SQL (see segment_sql).

Absent values compare like Python's None: a comparison with a value someone does not have is
false, never NULL, so `not` and `!=` include them as Python would.
"""

from __future__ import annotations

import ast
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from pipeline.audience.segment_columns import Columns
from pipeline.db.schema import subscriber_tags, subscribers
from pipeline.errors import SegmentError

_TEXT = {"first_name": subscribers.c.first_name, "last_name": subscribers.c.last_name,
         "timezone": subscribers.c.timezone, "status": subscribers.c.status}
_NULLABLE = {"first_name", "last_name", "timezone"}
_OPS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_FLIPPED: dict[type[ast.cmpop], type[ast.cmpop]] = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt,
                                                    ast.GtE: ast.LtE, ast.Eq: ast.Eq, ast.NotEq: ast.NotEq}
_SYMBOL = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
           ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}


@dataclass(frozen=True)
class Field:
    name: str


class Comparisons(ABC):
    """The compiler's comparisons; the compiler supplies its fields, its SQL and its node walk."""

    fields: set[str]  # the workspace's custom fields
    sql: Columns

    @abstractmethod
    def fail(self, node: ast.AST | None, message: str) -> SegmentError: ...

    @abstractmethod
    def node(self, node: ast.expr) -> Any: ...

    @abstractmethod
    def count(self, node: ast.expr) -> None: ...

    @abstractmethod
    def parse_date(self, value: Any, node: ast.expr) -> datetime: ...

    # -- comparisons -------------------------------------------------------------------------
    def compare(self, node: ast.Compare) -> sa.ColumnElement[bool]:
        parts = []
        left_node = node.left
        for op, right_node in zip(node.ops, node.comparators):
            parts.append(self.pair(node, left_node, op, right_node))
            left_node = right_node
        return parts[0] if len(parts) == 1 else sa.and_(*parts)

    def pair(self, node: ast.Compare, left_node: ast.expr, op: ast.cmpop, right_node: ast.expr) -> Any:
        self.count(left_node)
        left, right = self.node(left_node), self.node(right_node)
        symbol = _SYMBOL.get(type(op), "?")
        if isinstance(op, (ast.In, ast.NotIn)):
            clause = self.membership(node, left, right, left_node, right_node)
            return sa.not_(clause) if isinstance(op, ast.NotIn) else clause
        if isinstance(op, (ast.Is, ast.IsNot)):
            if right is not None:
                raise self.fail(right_node, "'is' only compares with None")
            op = ast.Eq() if isinstance(op, ast.Is) else ast.NotEq()
        if isinstance(right, Field) and not isinstance(left, Field):
            left, right, left_node = right, left, right_node
            op = _FLIPPED[type(op)]()
        if not isinstance(left, Field):
            raise self.fail(node, f"'{symbol}' needs a field on one side, such as city == \"Portland\"")
        if isinstance(right, Field):
            raise self.fail(node, "comparing two fields is not supported")
        if isinstance(right, (sa.ColumnElement, tuple)):
            raise self.fail(right_node, f"cannot compare {left.name} {symbol} this value")
        return self.field_compare(left, op, right, left_node, right_node)

    def field_compare(self, target: Field, op: ast.cmpop, value: Any, node: ast.expr,
                      value_node: ast.expr) -> sa.ColumnElement[bool]:
        fn = _OPS[type(op)]
        name = target.name
        if name == "tags":
            raise self.fail(node, "tags only works with 'in' and 'not in', such as \"back-pain\" in tags")
        if value is None:
            if type(op) not in (ast.Eq, ast.NotEq):
                raise self.fail(value_node, "None can only be compared with == or !=")
            present = self.present(target, node)
            return sa.not_(present) if isinstance(op, ast.Eq) else present
        if name == "signed_up":
            when = self.parse_date(value, value_node) if not isinstance(value, datetime) else value
            return fn(subscribers.c.signed_up, when)
        if isinstance(value, datetime):
            raise self.fail(value_node, f"{name} is not a date; only signed_up compares with dates")
        if isinstance(value, bool):
            if name not in self.fields or type(op) not in (ast.Eq, ast.NotEq):
                raise self.fail(value_node, "True and False compare only with custom fields, using == or !=")
            clause = self.sql.json_bool(name, value)
            return clause if isinstance(op, ast.Eq) else sa.not_(clause)
        if isinstance(value, (int, float)):
            if name not in self.fields:
                raise self.fail(value_node, f"{name} holds text; compare it with text in quotes")
            if isinstance(op, ast.NotEq):  # as in Python, a missing number is not equal to any number
                return sa.not_(self.guard(target, self.sql.json_number(name) == value))
            return self.guard(target, fn(self.sql.json_number(name), value))
        column, text = self.text(target, value, value_node)
        if isinstance(op, ast.NotEq):
            return sa.not_(self.guard(target, column == text))
        return self.guard(target, fn(column, text))

    def membership(self, node: ast.Compare, left: Any, right: Any, left_node: ast.expr,
                   right_node: ast.expr) -> sa.ColumnElement[bool]:
        if isinstance(right, Field) and right.name == "tags":
            if not isinstance(left, str):
                raise self.fail(left_node, "put a tag in quotes before 'in tags', such as \"back-pain\" in tags")
            tagged = sa.select(subscriber_tags.c.subscriber_id).where(subscriber_tags.c.tag == left)
            return subscribers.c.id.in_(tagged)
        if isinstance(right, Field):
            if not isinstance(left, str):
                raise self.fail(left_node, f"'in {right.name}' looks for text inside it; put the text in quotes")
            if right.name == "signed_up":
                raise self.fail(right_node, "signed_up is a date; compare it with >= or <")
            column, needle = self.text(right, left, left_node)
            return self.guard(right, self.sql.contains(column, needle))
        if isinstance(left, Field) and isinstance(right, tuple):
            if left.name in ("tags", "signed_up"):
                raise self.fail(left_node, f"{left.name} cannot be looked up in a list")
            if all(isinstance(v, str) for v in right):
                if left.name in self.fields:
                    return self.guard(left, self.sql.bytewise(self.sql.json_text(left.name)).in_(right))
                column = subscribers.c.email_key if left.name == "email" else _TEXT[left.name]
                values = [v.lower() for v in right] if left.name == "email" else list(right)
                return self.guard(left, self.sql.bytewise(column).in_(values))
            if left.name in self.fields and all(isinstance(v, (int, float)) for v in right):
                return self.guard(left, self.sql.numbers_in(self.sql.json_number(left.name), right))
            raise self.fail(right_node, "a list must hold only text or only numbers")
        raise self.fail(node, "'in' works as \"tag\" in tags, \"text\" in field, or field in [\"a\", \"b\"]")

    # -- SQL building blocks -----------------------------------------------------------------
    def text(self, target: Field, value: Any, node: ast.expr) -> tuple[sa.ColumnElement[Any], str]:
        if not isinstance(value, str):
            raise self.fail(node, f"{target.name} holds text; compare it with text in quotes")
        if target.name == "email":
            return self.sql.bytewise(subscribers.c.email_key), value.lower()
        if target.name in _TEXT:
            return self.sql.bytewise(_TEXT[target.name]), value
        if target.name in ("tags", "signed_up"):
            raise self.fail(node, f"{target.name} cannot be compared with text")
        return self.sql.bytewise(self.sql.json_text(target.name)), value

    def guard(self, target: Field, clause: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
        """An absent value makes a comparison false, never NULL, so `not` behaves as in Python."""
        if target.name in _NULLABLE or target.name in self.fields:
            return sa.func.coalesce(clause, sa.false())
        return clause

    def present(self, target: Field, node: ast.expr) -> sa.ColumnElement[bool]:
        if target.name in _NULLABLE:
            return _TEXT[target.name].is_not(None)
        if target.name in self.fields:
            return self.sql.json_text(target.name).is_not(None)
        raise self.fail(node, f"{target.name} always has a value")
