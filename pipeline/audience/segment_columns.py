"""The SQL that reads and compares a subscriber's values, on SQLite and PostgreSQL alike.

Custom fields live in one JSON column; text compares byte by byte on both databases (SQLite's
own rule; PostgreSQL is told COLLATE "C", whatever collation the database was created with).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from pipeline.db.schema import subscribers


@dataclass(frozen=True)
class Columns:
    dialect: str

    def bytewise(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """Text compared byte by byte, as SQLite does, whatever collation the PostgreSQL database has.

        Equality is unchanged (every collation a PostgreSQL database can default to is
        deterministic); ordering and prefixes stop depending on the locale.
        """
        return sa.collate(column, "C") if self.dialect == "postgresql" else column

    def path(self, name: str) -> sa.BindParameter[str]:
        return sa.bindparam(None, f'$."{name}"', type_=sa.String) if self.dialect == "sqlite" else \
            sa.bindparam(None, name, type_=sa.String)

    def json_text(self, name: str) -> sa.ColumnElement[Any]:
        fields = subscribers.c.fields
        if self.dialect == "sqlite":
            kind = sa.func.json_type(fields, self.path(name))
            return sa.case((kind == "true", "true"), (kind == "false", "false"),
                           else_=sa.cast(sa.func.json_extract(fields, self.path(name)), sa.Text))
        return fields.op("->>", return_type=sa.Text)(self.path(name))

    def json_number(self, name: str) -> sa.ColumnElement[Any]:
        fields = subscribers.c.fields
        if self.dialect == "sqlite":
            return sa.case((sa.func.json_type(fields, self.path(name)).in_(["integer", "real"]),
                            sa.func.json_extract(fields, self.path(name))))
        return sa.case((sa.func.jsonb_typeof(fields.op("->")(self.path(name))) == "number",
                        sa.cast(fields.op("->>")(self.path(name)), sa.Numeric)))

    def numbers_in(self, column: sa.ColumnElement[Any], values: tuple[Any, ...]) -> sa.ColumnElement[bool]:
        """A number in a list, compared as `==` would compare it with each item.

        Whole numbers and fractions are bound apart: one list of both would bind every item as
        the first one's type, and PostgreSQL would round 2.5 to a whole number.
        """
        whole = [v for v in values if isinstance(v, int)]
        fractions = [v for v in values if not isinstance(v, int)]
        parts = [column.in_(sa.bindparam(None, items, type_=kind, expanding=True))
                 for items, kind in ((whole, sa.BigInteger()), (fractions, sa.Float())) if items]
        return parts[0] if len(parts) == 1 else sa.or_(*parts)

    def json_bool(self, name: str, value: bool) -> sa.ColumnElement[bool]:
        fields = subscribers.c.fields
        word = "true" if value else "false"
        if self.dialect == "sqlite":
            return sa.func.coalesce(sa.func.json_type(fields, self.path(name)) == word, sa.false())
        return sa.func.coalesce(sa.and_(sa.func.jsonb_typeof(fields.op("->")(self.path(name))) == "boolean",
                                        fields.op("->>")(self.path(name)) == word), sa.false())

    def contains(self, column: sa.ColumnElement[Any], needle: str) -> sa.ColumnElement[bool]:
        function = sa.func.instr if self.dialect == "sqlite" else sa.func.strpos
        return function(column, needle) > 0

    def affix(self, column: sa.ColumnElement[Any], needle: str, start: bool) -> sa.ColumnElement[bool]:
        size = len(needle)
        if size == 0:
            return column.is_not(None)
        if start:
            return sa.func.substr(column, 1, size) == needle
        if self.dialect == "sqlite":
            return sa.func.substr(column, -size) == needle
        return sa.func.right(column, size) == needle
