"""CSV imports: Mailchimp audience exports, listmonk exports and plain files, in one transaction.

Rows stream through in batches, so a million-row file never sits in memory; rejected rows go
to FILE.rejects.csv with a reason (see rejects.py); a failure or Ctrl-C rolls it all back and
stops the helper process that parses large files (see helper.py).
"""

from __future__ import annotations

import gc
import json
import signal
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.audience.addresses import email_hash
from pipeline.audience.consent import Imported, new_import, record_imports
from pipeline.audience.importing.helper import interrupts_held, parse
from pipeline.audience.importing.load import Loader, loader
from pipeline.audience.importing.parse import Header, Parsed, Parser, Record
from pipeline.audience.importing.rejects import Rejects, remove_leftovers
from pipeline.audience.subscribers import register_fields
from pipeline.audience.values import clean_tag
from pipeline.clock import from_sql_time, sql_time, utcnow
from pipeline.db.engine import Store
from pipeline.db.schema import (
    STATUSES,
    SUPPRESSED,
    subscriber_events,
    subscriber_tags,
    subscribers,
    suppressions,
)
from pipeline.errors import ImportFailed

MAX_WARNINGS = 20
BULK_FROM_BYTES = 16 << 20  # about 100,000 rows: from here an index rebuild pays off

__all__ = ["ImportFailed", "ImportOptions", "ImportReport", "import_csv"]


@dataclass
class ImportOptions:
    tags: tuple[str, ...] = ()
    update: bool = True
    dry_run: bool = False
    status: str | None = None  # None: each row's status column, else subscribed
    resubscribe: bool = False


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    warnings: list[str] = field(default_factory=list)
    warning_count: int = 0
    rejects_path: Path | None = None
    dry_run: bool = False

    def warn(self, message: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)


class _Saving:
    """From hold() to the end of the block, a Ctrl-C is noted instead of raised.

    Held from just before the commit until the rejects file is in place: SQLite commits inside
    one C call and Python raises KeyboardInterrupt only after it returns, so a Ctrl-C arriving
    during the commit would otherwise report "interrupted" for an import that was saved.
    """

    def __init__(self) -> None:
        self.previous: Any = None
        self.noted = False

    def hold(self) -> None:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not None:
            self.previous = signal.signal(signal.SIGINT, self._note)

    def _note(self, _signum: int, _frame: object) -> None:
        self.noted = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None


class Importer:
    def __init__(self, store: Store, path: Path, options: ImportOptions,
                 progress: Callable[[int], None] | None = None) -> None:
        if options.status is not None and options.status not in STATUSES:
            raise ImportFailed(f"unknown status {options.status!r}; use one of {', '.join(STATUSES)}", where=path)
        self.store = store
        self.path = path
        self.options = options
        self.progress = progress or (lambda _n: None)
        self.report = ImportReport(dry_run=options.dry_run)
        self.source = f"import:{path.name}"
        self.parser = Parser(path, options.status, frozenset(clean_tag(t) for t in options.tags))
        self.any_erased = False
        self.import_id: int | None = None  # the consent_imports row, made when a first consent is recorded
        self.started_empty = False

    def run(self) -> ImportReport:
        remove_leftovers(self.path.parent)
        self.parser.check()
        items = parse(self.parser)
        rejects: Rejects | None = None
        saving = _Saving()
        collecting = gc.isenabled()
        try:
            with saving:
                # Without SQLite's foreign-key checks: every row this transaction adds refers to a
                # subscriber it made or read itself, holding the write lock (7 % of the inserts' time).
                with self.store.transaction(rollback=self.options.dry_run, foreign_keys=False) as conn:
                    self.any_erased = conn.execute(sa.select(suppressions.c.email_hash).limit(1)).first() is not None
                    # Into an empty list (a first import, moving from another system), no row of the
                    # file can be there already: the parser lets no address through twice, and the
                    # write lock keeps everyone else out. That spares a look-up for every row.
                    self.started_empty = conn.execute(sa.select(subscribers.c.id).limit(1)).first() is None
                    # Told before the first item starts the helper process, which takes a copy of the parser.
                    self.parser.keep_cells = self.any_erased or not self.started_empty
                    header = next(items)
                    assert isinstance(header, Header)
                    with interrupts_held():  # the temporary file exists only with the name that removes it
                        rejects = Rejects(self.path, header.cells, header.delimiter)
                    gc.disable()  # millions of short-lived objects; reference counting frees them all
                    fields: set[str] = set()
                    large = self.path.stat().st_size >= BULK_FROM_BYTES
                    with loader(conn, large, self.started_empty) as load:
                        for batch in items:
                            assert isinstance(batch, Parsed)
                            for cells, reason in batch.rejects:
                                rejects.add(cells, reason)
                            for warning in batch.warnings:
                                self.report.warn(warning)
                            fields |= batch.fields
                            self._apply(conn, load, batch.records, rejects)
                            self.progress(batch.position)
                    register_fields(conn, fields)
                    rejects.flush()
                    saving.hold()
                self.report.rejected = rejects.count
                self.report.rejects_path = rejects.finish()
        except BaseException:
            if rejects is not None:
                rejects.discard()
            raise
        finally:
            items.close()  # stops the helper process, if any, whatever happened
            if collecting:
                gc.enable()
        if saving.noted:
            self.report.warn("Ctrl-C came while the import was being saved; it was saved in full")
        return self.report

    def _apply(self, conn: Connection, load: Loader, batch: list[Record], rejects: Rejects) -> None:
        keys = [r.key for r in batch]
        stored = load.stored(keys) if not self.started_empty else []
        existing = {row.email_key: row for row in conn.execute(_EXISTING, {"keys": stored})} if stored else {}
        erased: set[str] = set()
        if self.any_erased:
            erased = set(conn.execute(_ERASED, {"hashes": [email_hash(k) for k in keys]}).scalars())
        have_tags: dict[int, set[str]] = {}
        if existing:
            for subscriber_id, tag in conn.execute(_TAGS_OF, {"ids": [row.id for row in existing.values()]}):
                have_tags.setdefault(subscriber_id, set()).add(tag)
        now = utcnow()
        stamp = sql_time(now)
        fresh = [r for r in batch if r.key not in existing] if existing else batch
        unsuppress: list[str] = []
        turned_away: list[tuple[Record, str]] = []  # written to the rejects file in the file's order
        if erased:
            fresh = self._not_erased(fresh, erased, unsuppress, turned_away)
        source = self.source
        # One comprehension, not appends in a loop: in a first import this is every row of the file.
        inserts = [(
            r.email, r.key, r.first_name, r.last_name, r.fields_json, r.timezone, r.status or "subscribed",
            r.consent_source or source, r.consent_at or (stamp if r.status in (None, "subscribed") else None),
            r.signed_up or stamp, stamp, stamp,
        ) for r in fresh]
        updates: list[dict[str, Any]] = []
        tagged: defaultdict[str, list[int]] = defaultdict(list)  # tag -> subscribers to add it to
        events: list[dict[str, Any]] = []
        imported: list[tuple[int, Imported]] = []  # consent records the file names (audience.consent)
        unchanged: set[int] = set()
        for record in [r for r in batch if r.key in existing] if existing else ():
            wanted = record.status or "subscribed"
            row = existing[record.key]
            changes: dict[str, Any] = {}
            if row.status in SUPPRESSED and wanted == "subscribed":
                if not self.options.resubscribe:
                    turned_away.append((record, f"line {record.line}: {row.email} is {row.status}; use "
                                                "--resubscribe to subscribe it again"))
                    continue
                changes["status"] = "subscribed"
            elif (row.status in ("subscribed", "pending") and wanted in SUPPRESSED
                  or row.status == "pending" and wanted == "subscribed"):  # the file vouches for their consent
                changes["status"] = wanted
            missing_tags: set[str] = set()
            if self.options.update:
                changes.update(_changed_fields(row, record))
                missing_tags = record.tags - have_tags.get(row.id, set())
                if record.consent is not None:
                    imported.append((row.id, _consent(record)))  # type: ignore[arg-type]
            if not changes and not missing_tags:
                self.report.unchanged += 1
                unchanged.add(row.id)
                continue
            if "status" in changes:
                events.append({"subscriber_id": row.id, "kind": changes["status"], "detail": None,
                               "source": self.source, "created_at": now})
            if changes:
                updates.append({"_id": row.id, **{c: changes.get(c, getattr(row, c)) for c in _UPDATABLE},
                                "updated_at": now})
            for tag in missing_tags:
                tagged[tag].append(row.id)
            self.report.updated += 1
        for record, reason in sorted(turned_away, key=lambda item: item[0].line):
            rejects.add(record.cells, reason)
        if unsuppress:
            conn.execute(suppressions.delete().where(suppressions.c.email_hash.in_(unsuppress)))
        self.report.added += len(inserts)
        if inserts:
            # New rows carry their origin in consent_source and created_at; events log later changes.
            ids = load.subscribers(inserts)
            for subscriber_id, record in zip(ids, fresh):
                for tag in record.tags:
                    tagged[tag].append(subscriber_id)
            consents = [r.consent for r in fresh]
            if consents.count(None) < len(consents):
                load.consents(self._import_id(conn, now), ids, consents)
        if updates:
            conn.execute(subscribers.update().where(subscribers.c.id == sa.bindparam("_id")), updates)
        load.tags(tagged)
        if events:
            conn.execute(subscriber_events.insert(), events)
        if imported:
            recorded = record_imports(conn, imported, self._import_id(conn, now)) & unchanged
            self.report.unchanged -= len(recorded)  # a new consent record is a change
            self.report.updated += len(recorded)

    def _not_erased(self, fresh: list[Record], erased: set[str], unsuppress: list[str],
                    turned_away: list[tuple[Record, str]]) -> list[Record]:
        """The new rows to add: an erased address stays out unless the import resubscribes it
        (then its suppression goes, into unsuppress); a row that would only suppress it again
        changes nothing."""
        kept = []
        for record in fresh:
            if email_hash(record.key) in erased:
                if (record.status or "subscribed") != "subscribed":
                    self.report.unchanged += 1  # already suppressed, and no personal data to keep
                    continue
                if not self.options.resubscribe:
                    turned_away.append((record, f"line {record.line}: {record.email} was erased and is "
                                                "suppressed; use --resubscribe to add it again"))
                    continue
                unsuppress.append(email_hash(record.key))
            kept.append(record)
        return kept

    def _import_id(self, conn: Connection, now: datetime) -> int:
        if self.import_id is None:
            self.import_id = new_import(conn, self.source, now)
        return self.import_id


def _consent(record: Record) -> Imported | None:
    if record.consent is None:
        return None
    optin, optin_ip, confirm, confirm_ip = record.consent
    return Imported(from_sql_time(optin) if optin else None, optin_ip, from_sql_time(confirm) if confirm else None,
                    confirm_ip)


_UPDATABLE = ("first_name", "last_name", "timezone", "consent_source", "consent_at", "signed_up", "fields",
              "status")
# Compiled once: expanding parameters take a list without a statement per batch.
_EXISTING = sa.select(subscribers).where(subscribers.c.email_key.in_(sa.bindparam("keys", expanding=True)))
_ERASED = sa.select(suppressions.c.email_hash).where(
    suppressions.c.email_hash.in_(sa.bindparam("hashes", expanding=True)))
_TAGS_OF = sa.select(subscriber_tags.c.subscriber_id, subscriber_tags.c.tag).where(
    subscriber_tags.c.subscriber_id.in_(sa.bindparam("ids", expanding=True)))


def _changed_fields(row: Any, record: Record) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for column in ("first_name", "last_name", "timezone", "consent_source"):
        value = getattr(record, column)
        if value is not None and value != getattr(row, column):
            changes[column] = value
    for column in ("consent_at", "signed_up"):
        text = getattr(record, column)
        current = getattr(row, column)
        if text is not None and (current is None or text != sql_time(current)):
            changes[column] = from_sql_time(text)
    merged = {**(row.fields or {}), **json.loads(record.fields_json)}
    if merged != (row.fields or {}):
        changes["fields"] = merged
    return changes


def import_csv(store: Store, path: Path, options: ImportOptions,
               progress: Callable[[int], None] | None = None) -> ImportReport:
    """Import a CSV file of subscribers; see ImportOptions. Nothing changes unless it all succeeds."""
    return Importer(store, path, options, progress).run()

