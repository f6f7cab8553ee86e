"""Everything the list holds about one person, as a GDPR access request asks for it: the
subscriber, their consent records, the history of their status, the messages sent to them, the
bounces and complaints reported of them, and the opens and clicks recorded of them
(`campaign subscribers show`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.audience import consent
from pipeline.audience.export import as_dict
from pipeline.audience.subscribers import events_of, get
from pipeline.clock import human
from pipeline.db.schema import bounces, deliveries
from pipeline.delivery.sends import all_sends
from pipeline.engagement.events import events_of as tracking_events_of


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def access_report(conn: Connection, address: str) -> dict[str, Any]:
    """The subscriber with this address (NotFoundError if none), as JSON-ready values."""
    subscriber = get(conn, address)
    names = _send_names(conn)  # which campaign each send was, for the messages, bounces and clicks
    return {
        "subscriber": {"id": subscriber.id, **as_dict(subscriber), "created_at": subscriber.created_at.isoformat(),
                       "updated_at": subscriber.updated_at.isoformat()},
        "consents": [{k: _plain(v) for k, v in asdict(c).items() if k != "id"}
                     for c in consent.of_subscriber(conn, subscriber.id)],
        "events": [{"at": e.at.isoformat(), "kind": e.kind, "source": e.source, "detail": e.detail}
                   for e in events_of(conn, subscriber.id)],
        "messages": _messages(conn, subscriber.id, names),
        "bounces": _bounces(conn, subscriber.id, names),
        "tracking": _tracking(conn, subscriber.id, names),
    }


Names = dict[int, tuple[str, str]]  # send id -> (campaign, occurrence)


def _send_names(conn: Connection) -> Names:
    return {s.id: (s.campaign, s.occurrence or "") for s in all_sends(conn)}


def _messages(conn: Connection, subscriber_id: int, names: Names) -> list[dict[str, Any]]:
    """Each copy of a campaign meant for them: where it stands, when it went and its Message-ID."""
    rows = conn.execute(sa.select(deliveries.c.send_id, deliveries.c.state, deliveries.c.sent_at,
                                  deliveries.c.message_id)
                        .where(deliveries.c.subscriber_id == subscriber_id).order_by(deliveries.c.id)).all()
    return [{"campaign": names.get(r.send_id, ("", ""))[0], "occurrence": names.get(r.send_id, ("", ""))[1],
             "state": r.state, "sent_at": _plain(r.sent_at), "message_id": r.message_id} for r in rows]


def _bounces(conn: Connection, subscriber_id: int, names: Names) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(bounces.c.send_id, bounces.c.kind, bounces.c.status, bounces.c.diagnostic,
                                  bounces.c.received_at)
                        .where(bounces.c.subscriber_id == subscriber_id).order_by(bounces.c.received_at,
                                                                                  bounces.c.id)).all()
    return [{"at": _plain(r.received_at), "kind": r.kind, "status": r.status, "diagnostic": r.diagnostic,
             "campaign": names.get(r.send_id, ("", ""))[0] if r.send_id is not None else ""} for r in rows]


def _tracking(conn: Connection, subscriber_id: int, names: Names) -> list[dict[str, Any]]:
    """The opens and clicks recorded of a subscriber: which campaign, which link, when, and by what
    kind of client (no IP address or user agent is kept)."""
    return [{"at": e.at.isoformat(), "kind": e.kind, "campaign": names.get(e.send_id, ("", ""))[0],
             "occurrence": names.get(e.send_id, ("", ""))[1], "url": e.url, "agent": e.agent, "machine": e.machine}
            for e in tracking_events_of(conn, subscriber_id)]


def _when(text: str | None) -> str:
    return human(datetime.fromisoformat(text)) if text else "-"


def _send(item: dict[str, Any]) -> str:
    """The campaign a message or an event belongs to, with its occurrence if it has one."""
    return item["campaign"] + (f" ({item['occurrence']})" if item["occurrence"] else "")


def _section(title: str, items: list[dict[str, Any]], line: Callable[[dict[str, Any]], str]) -> list[str]:
    """A heading and a line for each item under it, or "none"."""
    return [title, *(f"  {line(item)}" for item in items)] if items else [title, "  none"]


def report_lines(report: dict[str, Any]) -> list[str]:
    """The report for people to read: one fact a line."""
    who = report["subscriber"]
    fields = ", ".join(f"{name}={value}" for name, value in sorted(who["fields"].items())) or "-"
    lines = [f"email: {who['email']}", f"first name: {who['first_name'] or '-'}",
             f"last name: {who['last_name'] or '-'}", f"status: {who['status']}",
             f"tags: {', '.join(who['tags']) or '-'}", f"fields: {fields}", f"timezone: {who['timezone'] or '-'}",
             f"signed up: {_when(who['signed_up'])}",
             (f"consent: {who['consent_source'] or '-'} at {_when(who['consent_at'])}" if who["consent_at"]
              else f"consent: not given yet ({who['consent_source'] or '-'})"), "consent records:"]
    for record in report["consents"] or [None]:
        if record is None:
            lines.append("  none")
            continue
        lines.append(f"  {record['method']} ({record['source']}), version {record['version'] or '-'}")
        if record["text"]:
            lines.append(f"    text: {record['text']}")
        if record["form_url"]:
            lines.append(f"    form: {record['form_url']}")
        for step in ("requested", "confirmed"):
            if record[f"{step}_at"] or record[f"{step}_ip"]:
                lines.append(f"    {step}: {_when(record[f'{step}_at'])} from {record[f'{step}_ip'] or '-'}, "
                             f"{record[f'{step}_user_agent'] or 'browser unknown'}")
    lines.append("history:")
    lines += [f"  {_when(e['at'])}\t{e['kind']}\t{e['source']}" + (f"\t{e['detail']}" if e["detail"] else "")
              for e in report["events"]]
    lines += _section("messages:", report["messages"], lambda m: (
        f"{_send(m)}\t{m['state']}\t{_when(m['sent_at'])}\t{m['message_id'] or '-'}"))
    lines += _section("bounces and complaints:", report["bounces"], lambda b: (
        f"{_when(b['at'])}\t{b['kind']}\t{b['campaign'] or '-'}\t{b['status'] or '-'}\t{b['diagnostic'] or '-'}"))
    lines += _section("opens and clicks:", report["tracking"], lambda e: (
        f"{_when(e['at'])}\t{e['kind']}\t{_send(e)}\t{e['url'] or '-'}\t"
        + (f"{e['agent']}, machine" if e["machine"] else e["agent"])))
    return lines
