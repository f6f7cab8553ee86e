"""Reading an import file into subscriber records: the header, then batches of good rows,
rejected rows with their reasons, and warnings.

Parsing a row (decoding, validating the address, names, tags, times) costs about as much as
storing it, so a large import runs this in a helper process (see helper.py) while the first
one writes: the two halves overlap and a million rows go in roughly twice as fast on a
two-core machine. Everything here is therefore picklable and has no other state.
"""

from __future__ import annotations

import csv
import itertools
import operator
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

from pipeline.audience import values
from pipeline.audience.addresses import InvalidEmail, email_key, normalize_email
from pipeline.audience.importing.cells import (
    Reject,
    attributes_of,
    clean,
    clean_ip_once,
    custom_json,
    stored_time,
    tags_of,
    timezone_once,
    to_json,
)
from pipeline.audience.importing.source import (
    bad_line,
    decoded_lines,
    open_csv,
    sniff_delimiter,
)
from pipeline.audience.values import (
    BUILTIN_FIELDS,
    clean_text,
    field_name,
    field_value,
    width_problem,
)
from pipeline.errors import ImportFailed

BATCH = 2000
MAX_CELL = 65536
# Column headers (as field names) that mean something; every other column is a custom field.
ALIASES = {
    "email": "email", "email_address": "email", "e_mail": "email", "e_mail_address": "email",
    "first_name": "first_name", "fname": "first_name", "firstname": "first_name", "given_name": "first_name",
    "last_name": "last_name", "lname": "last_name", "lastname": "last_name", "surname": "last_name",
    "family_name": "last_name", "name": "name", "full_name": "name",
    "tags": "tags", "tag": "tags", "timezone": "timezone", "time_zone": "timezone", "tz": "timezone",
    "status": "status", "optin_time": "optin_time", "confirm_time": "confirm_time",
    "optin_ip": "optin_ip", "confirm_ip": "confirm_ip",
    "consent_source": "consent_source", "consent_at": "consent_at", "signed_up": "signed_up",
    "created_at": "created_at", "attributes": "attributes",
}
# The roles in the order _Columns.pick returns their cells.
ROLES = ("email", "first_name", "last_name", "name", "tags", "timezone", "status", "optin_time", "confirm_time",
         "optin_ip", "confirm_ip", "consent_source", "consent_at", "signed_up", "created_at", "attributes")
assert set(ROLES) == set(ALIASES.values())
# Bookkeeping columns of Mailchimp and listmonk exports that describe the export, not the person.
IGNORED = {"gmtoff", "dstoff", "last_changed", "leid", "euid", "uuid", "updated_at"}
STATUS_WORDS = {
    "subscribed": "subscribed", "enabled": "subscribed", "active": "subscribed",
    "unsubscribed": "unsubscribed", "blocklisted": "unsubscribed", "blacklisted": "unsubscribed",
    "bounced": "bounced", "cleaned": "bounced", "complained": "complained",
    "pending": "pending",  # an export's unconfirmed signups: kept pending, never mailed
}


class Record(NamedTuple):
    """One good row. A tuple: the helper process sends batches of them to the parent as plain
    tuples of these fields (Parser.plain), and the parent makes Records of them."""

    line: int
    # The row's cells, for the rejects file: joined by _US, which pickles as one string instead
    # of a list of them (a fifth of the pickling both ways); the list itself when a cell holds _US;
    # None when the writer said it would turn no row away (Parser.keep_cells).
    row: str | list[str] | None
    email: str
    key: str
    status: str | None
    first_name: str | None
    last_name: str | None
    tags: frozenset[str]
    fields_json: str  # custom fields, already as the JSON the database stores
    timezone: str | None
    consent_source: str | None
    consent_at: str | None  # sql_time() text: what the database stores
    signed_up: str | None
    # Mailchimp's OPTIN_TIME, OPTIN_IP, CONFIRM_TIME and CONFIRM_IP, for the consent record
    # (audience.consent); None when the row has none of them.
    consent: tuple[str | None, str | None, str | None, str | None] | None = None

    @property
    def cells(self) -> list[str]:
        assert self.row is not None, "the parser was told no row would be turned away"
        return self.row.split(_US) if isinstance(self.row, str) else self.row


_NO_TAGS: frozenset[str] = frozenset()
_US = "\x1f"  # the ASCII unit separator, which no one types into a spreadsheet
# A Record from one tuple of its values, in its order: Record's own constructor and _make
# handle their arguments in Python, at twice the cost.
new_record = partial(tuple.__new__, Record)


def _joined(cells: list[str]) -> str | list[str]:
    row = _US.join(cells)
    return row if row.count(_US) == len(cells) - 1 else cells


@dataclass
class Header:
    cells: list[str]
    delimiter: str


@dataclass
class Parsed:
    """One batch of rows: the good ones, the rejected ones with reasons, and warnings."""

    records: list[Record]
    rejects: list[tuple[list[str], str]]
    warnings: list[str]
    fields: set[str]
    position: int


class _Columns:
    """Which column holds what, worked out once from the header row."""

    def __init__(self, header: list[str], path: Path) -> None:
        self.header = header
        self.roles: dict[str, int] = {}
        self.custom: list[tuple[str, int]] = []
        seen: dict[str, int] = {}
        for index, raw in enumerate(header):
            name = field_name(raw)
            if not name or name in IGNORED:
                continue
            role = ALIASES.get(name)
            target = role or name
            if target in seen:
                raise ImportFailed(f"columns {seen[target] + 1} and {index + 1} both mean {target!r}", where=path)
            seen[target] = index
            if role:
                self.roles[role] = index
            elif name in BUILTIN_FIELDS:
                continue
            else:
                self.custom.append((name, index))
        if "email" not in self.roles:
            found = ", ".join(repr(h) for h in header[:8]) or "nothing"
            raise ImportFailed(f"no email column (the header has {found}); name one 'email' or 'Email Address'",
                               where=path)
        # A role the file has no column for reads the "" that pick() puts after the row's cells.
        self.cells_of = operator.itemgetter(*(self.roles.get(role, len(header)) for role in ROLES))
        # The custom fields' cells, as they are (itemgetter with one index returns the cell
        # itself, not a 1-tuple).
        custom = tuple(index for _, index in self.custom)
        self.custom_cells = operator.itemgetter(*custom) if len(custom) > 1 else lambda cells: (cells[custom[0]],)
        self.custom_names = tuple(name for name, _ in self.custom)

    def pick(self, cells: list[str]) -> tuple[str, ...]:
        """The row's cells in ROLES order, stripped, "" for a role without a column (this runs
        once per row, so it is all done in C: a getter and map)."""
        return self.cells_of([*map(str.strip, cells), ""])  # stripped first: a row has fewer cells than roles


class Parser:
    """Everything needed to turn the file into batches; small enough to hand to a child process."""

    def __init__(self, path: Path, status: str | None, extra_tags: frozenset[str]) -> None:
        self.path = path
        self.status = status
        self.extra_tags = extra_tags
        # Whether records carry their cells, which the writer needs only to turn a row away
        # itself; into an empty list with no erased addresses it cannot, and the cells are a
        # third of what the helper process sends.
        self.keep_cells = True
        # Records as plain tuples of their fields, which pickle without a class to look up and
        # call for each: the helper process sends them so, and the parent makes Records of them.
        self.plain = False
        self.seen: set[str] = set()
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def check(self) -> None:
        """ImportFailed now if the file cannot be imported at all (unreadable, binary, no usable
        header): before the import waits for the database's write lock, not after."""
        items = self.items()
        try:
            next(items)
        finally:
            items.close()

    def items(self) -> Iterator[Header | Parsed]:
        """The header first, then batches. Whole-file problems raise ImportFailed."""
        csv.field_size_limit(sys.maxsize)  # a huge cell is rejected with a reason, not a crash
        raw = open_csv(self.path)
        reader: Any = None
        try:
            lines = decoded_lines(raw)
            first = next(lines, "")
            delimiter = sniff_delimiter(first)
            reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter)
            header = self._header(reader)
            columns = _Columns(header, self.path)
            yield Header(header, delimiter)
            yield from self._batches(reader, columns, raw)
        except UnicodeDecodeError:
            # 0: no line fails when read again (the file changed under the import)
            where = f"line {line}" if (line := bad_line(raw)) else "part of it"
            raise ImportFailed(f"{where} is not UTF-8 text; save the file as UTF-8 "
                               "(nothing was imported)", where=self.path) from None
        except csv.Error as exc:
            line = reader.line_num if reader is not None else 1
            raise ImportFailed(f"line {line}: {exc} (nothing was imported)", where=self.path) from None
        finally:
            raw.close()

    def _header(self, reader: Any) -> list[str]:
        for row in reader:
            if any(cell.strip() for cell in row):
                return [cell.strip() for cell in row]
        raise ImportFailed("has no header row", where=self.path)

    def _batches(self, reader: Any, columns: _Columns, raw: BinaryIO) -> Iterator[Parsed]:
        batch = Parsed([], [], [], set(), 0)
        rows: list[tuple[Any, ...]] = []  # the batch's records, as plain tuples until _finish
        width = len(columns.header)
        for cells in reader:
            if not cells:
                continue
            line = reader.line_num
            try:
                if len(cells) != width:
                    if not "".join(cells).strip():
                        continue
                    if len(cells) > width and not any(c.strip() for c in cells[width:]):
                        cells = cells[:width]  # spreadsheets often add empty trailing cells
                    else:
                        raise Reject(f"has {len(cells)} fields, the header has {width}")
                record = self._record(line, cells, columns, batch.fields)
                if record is not None:  # None: a row of blank cells
                    rows.append(record)
            except Reject as exc:
                batch.rejects.append((cells, f"line {line}: {exc}"))
            if len(rows) + len(batch.rejects) >= BATCH:
                yield self._finish(batch, rows, raw)
                batch, rows = Parsed([], [], [], set(), 0), []
        yield self._finish(batch, rows, raw)

    def _finish(self, batch: Parsed, rows: list[tuple[Any, ...]], raw: BinaryIO) -> Parsed:
        # In the helper process they stay plain tuples, which the parent makes Records.
        batch.records = cast(list[Record], rows) if self.plain else list(map(new_record, rows))
        batch.warnings, self.warnings = self.warnings, []
        batch.position = raw.tell()
        return batch

    def _record(self, line: int, cells: list[str], columns: _Columns, names: set[str]) -> tuple[Any, ...] | None:
        """The row as a plain tuple of Record's fields; None for a row of blank cells."""
        # sum() adds the lengths in C where max() compares them as objects, and no cell can be
        # longer than all of them together: the exact check runs only for a long row
        if sum(map(len, cells)) > MAX_CELL and (index := next(
                (i for i, cell in enumerate(cells) if len(cell) > MAX_CELL), None)) is not None:
            raise Reject(f"cell {columns.header[index]!r} is {len(cells[index]):,} characters long "
                          f"(the limit is {MAX_CELL:,})")
        (raw_email, first_cell, last_cell, name_cell, tags_cell, zone_cell, status_cell, optin_cell, confirm_cell,
         optin_ip_cell, confirm_ip_cell, source_cell, consent_at_cell, signed_up_cell, created_cell,
         attributes_cell) = columns.pick(cells)
        if not raw_email:
            if not "".join(cells).strip():
                return None
            raise Reject("no email address")
        try:
            email = normalize_email(raw_email)
        except InvalidEmail as exc:
            raise Reject(f"invalid email address {clean_text(raw_email)!r}: {exc}") from None
        key = email_key(email)
        if key == email:  # one string object: pickled once, and kept once by the writer
            key = email
        if key in self.seen:
            raise Reject(f"duplicate of an earlier row for {email}")
        status = self.status
        if status is None and status_cell:
            word = status_cell.lower()
            if word not in STATUS_WORDS:
                raise Reject(f"unknown status {word!r}")
            status = STATUS_WORDS[word]
        first_name = clean(first_cell) if first_cell else None
        last_name = clean(last_cell) if last_cell else None
        if name_cell and not (first_name or last_name):
            first, _, rest = (clean(name_cell) or "").partition(" ")
            first_name, last_name = first or None, rest or None
        source = clean(source_cell) if source_cell else None
        # width_problem's own test, made once for the three instead of in three calls a row (and
        # first on the cells they came from: cleaning never makes text longer)
        if (len(first_cell) + len(last_cell) + len(name_cell) + len(source_cell) > values.MAX_TEXT
                and max(len(first_name or ""), len(last_name or ""), len(source or "")) > values.MAX_TEXT):
            raise Reject(width_problem("first_name", first_name) or width_problem("last_name", last_name)
                         or width_problem("consent_source", source))
        tags = tags_of(tags_cell) if tags_cell else _NO_TAGS
        if self.extra_tags:
            tags = tags | self.extra_tags
        timezone = None
        if zone_cell:
            timezone = timezone_once(zone_cell)
            if timezone is None:
                self.warn(f"{self.path.name} line {line}: unknown timezone "
                          f"{clean_text(zone_cell)!r} dropped; the subscriber was kept")
        fields_json = "{}"
        if attributes_cell:
            fields = attributes_of(attributes_cell)
            for name, index in columns.custom:
                if value := cells[index].strip():
                    fields[name] = field_value(value.replace("\x00", ""))
            if fields:
                names.update(fields)
                fields_json = to_json(fields)
        elif columns.custom:
            fields_json, present = custom_json(columns.custom_names, columns.custom_cells(cells))
            names.update(present)
        self.seen.add(key)
        try:  # stored_time here, not through _time, for the time most rows have: a call less a row
            optin = stored_time(optin_cell) if optin_cell else None
        except ValueError:
            optin = self._time(line, "optin_time", optin_cell)
        if confirm_cell == optin_cell and optin is not None:
            confirm = optin  # a single opt-in list's export: the same moment in both columns
        else:
            confirm = self._time(line, "confirm_time", confirm_cell) if confirm_cell else None
        optin_ip = self._ip(line, "optin_ip", optin_ip_cell) if optin_ip_cell else None
        confirm_ip = self._ip(line, "confirm_ip", confirm_ip_cell) if confirm_ip_cell else None
        return (
            line, _joined(cells) if self.keep_cells else None, email, key, status, first_name, last_name, tags,
            fields_json, timezone, source,
            confirm or optin or (self._time(line, "consent_at", consent_at_cell) if consent_at_cell else None),
            (self._time(line, "signed_up", signed_up_cell) if signed_up_cell else None) or optin
            or (self._time(line, "created_at", created_cell) if created_cell else None),
            (optin, optin_ip, confirm, confirm_ip) if optin or confirm or optin_ip or confirm_ip else None,
        )

    def _ip(self, line: int, role: str, value: str) -> str | None:
        ip = clean_ip_once(value)
        if ip is None:
            self.warn(f"{self.path.name} line {line}: {role} {clean_text(value)!r} is not an IP address; dropped")
        return ip

    def _time(self, line: int, role: str, value: str) -> str | None:
        try:
            return stored_time(value)
        except ValueError:
            self.warn(f"{self.path.name} line {line}: {role} {clean_text(value)!r} is not a date and time; dropped")
            return None

