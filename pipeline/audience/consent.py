"""Consent records: what each subscriber agreed to, when and from where (the consents table for
signups; consent_imports and imported_consents for what imports recorded).

The answer to an audit or a GDPR access request: the sentence the reader was shown and its
version, the page the form was on, and the time, IP address and browser of the signup and of its
confirmation. An import keeps what the system it came from recorded (Mailchimp's OPTIN_TIME,
OPTIN_IP, CONFIRM_TIME and CONFIRM_IP). Erasing a subscriber deletes their records with them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.audience.values import clean_text
from pipeline.db.schema import consent_imports, consents, imported_consents

DOUBLE_OPT_IN = "double-opt-in"
SINGLE_OPT_IN = "single-opt-in"
IMPORT = "import"
MAX_AGENT = 500
MAX_URL = 2000


def clean_ip(value: str | None) -> str | None:
    """An IPv4 or IPv6 address as text, or None for anything else."""
    try:
        return str(ipaddress.ip_address((value or "").strip()))
    except ValueError:
        return None


def _agent(value: str | None) -> str | None:
    cleaned = clean_text(value)
    return cleaned[:MAX_AGENT] if cleaned else None


@dataclass(frozen=True)
class Client:
    """Who sent a request: its address and browser, as far as the server can tell."""

    ip: str | None
    user_agent: str | None


@dataclass(frozen=True)
class Consent:
    id: int | None  # None for a record an import made: it is known by its subscriber and import
    method: str
    text: str | None
    version: str | None
    form_url: str | None
    source: str
    requested_at: datetime | None
    requested_ip: str | None
    requested_user_agent: str | None
    confirmed_at: datetime | None
    confirmed_ip: str | None
    confirmed_user_agent: str | None


def requested(conn: Connection, subscriber_id: int, method: str, text: str | None, version: str | None,
              form_url: str | None, client: Client, source: str, now: datetime) -> int:
    """A signup's consent, not yet confirmed; returns its id."""
    url = clean_text(form_url)
    return int(conn.execute(consents.insert().values(
        subscriber_id=subscriber_id, method=method, text=text, version=version,
        form_url=url[:MAX_URL] if url else None, source=source, requested_at=now,
        requested_ip=clean_ip(client.ip), requested_user_agent=_agent(client.user_agent),
        created_at=now)).inserted_primary_key[0])


def confirmed(conn: Connection, consent_id: int, subscriber_id: int, client: Client, now: datetime) -> bool:
    """Complete a signup's consent with its confirmation; False if it is not that subscriber's, or done."""
    done = conn.execute(consents.update().where(
        consents.c.id == consent_id, consents.c.subscriber_id == subscriber_id, consents.c.confirmed_at.is_(None),
    ).values(confirmed_at=now, confirmed_ip=clean_ip(client.ip), confirmed_user_agent=_agent(client.user_agent)))
    return bool(done.rowcount)


def of_subscriber(conn: Connection, subscriber_id: int) -> list[Consent]:
    """Every consent record of the subscriber, signups' and imports', oldest first."""
    rows = conn.execute(sa.select(consents).where(consents.c.subscriber_id == subscriber_id))
    found = [(row.created_at, row.id, Consent(
        row.id, row.method, row.text, row.version, row.form_url, row.source, row.requested_at, row.requested_ip,
        row.requested_user_agent, row.confirmed_at, row.confirmed_ip, row.confirmed_user_agent)) for row in rows]
    imported = conn.execute(
        sa.select(imported_consents, consent_imports.c.source, consent_imports.c.created_at)
        .join(consent_imports, consent_imports.c.id == imported_consents.c.import_id)
        .where(imported_consents.c.subscriber_id == subscriber_id))
    found += [(row.created_at, 0, Consent(
        None, IMPORT, None, None, None, row.source, row.requested_at, row.requested_ip, None, row.confirmed_at,
        row.confirmed_ip, None)) for row in imported]
    return [record for _, _, record in sorted(found, key=lambda item: item[:2])]


@dataclass(frozen=True)
class Imported:
    """The consent an import file names for one subscriber."""

    requested_at: datetime | None
    requested_ip: str | None
    confirmed_at: datetime | None
    confirmed_ip: str | None

    def key(self) -> tuple[object, ...]:
        return self.requested_at, self.requested_ip, self.confirmed_at, self.confirmed_ip


def new_import(conn: Connection, source: str, now: datetime) -> int:
    """What all the consents one import records share (its file, its time); their import id."""
    return int(conn.execute(consent_imports.insert().values(source=source, created_at=now)).inserted_primary_key[0])


def record_imports(conn: Connection, items: Sequence[tuple[int, Imported]], import_id: int) -> set[int]:
    """Keep the consents an import names; one already recorded for that subscriber is not kept
    twice, so importing a file again changes nothing. Returns the subscribers given a new record."""
    if not items:
        return set()
    ids = sorted({subscriber_id for subscriber_id, _ in items})
    have: set[tuple[object, ...]] = set()
    c = imported_consents.c
    for start in range(0, len(ids), 500):
        rows = conn.execute(sa.select(c.subscriber_id, c.requested_at, c.requested_ip, c.confirmed_at, c.confirmed_ip)
                            .where(c.subscriber_id.in_(ids[start:start + 500])))
        have.update((row[0], *row[1:]) for row in rows)
    rows_out: list[dict[str, object]] = []
    for subscriber_id, consent in items:
        key = (subscriber_id, *consent.key())
        if key in have:
            continue
        have.add(key)
        rows_out.append({"subscriber_id": subscriber_id, "import_id": import_id,
                         "requested_at": consent.requested_at, "requested_ip": consent.requested_ip,
                         "confirmed_at": consent.confirmed_at, "confirmed_ip": consent.confirmed_ip})
    if rows_out:
        conn.execute(imported_consents.insert(), rows_out)
    return {int(row["subscriber_id"]) for row in rows_out}  # type: ignore[call-overload]
