"""`campaign report`: what a campaign's readers did with it, in figures.

Counted over every send of the campaign (a subject test's sends and the rest, a digest's
occurrences). "Unique" counts messages: a reader who opened one copy five times is one unique
open, and a reader of two occurrences can be two. Rates are per message delivered (sent, less
the bounces reported for it). Machine opens and clicks (privacy proxies, link scanners; see
agents) are counted apart and in no rate.

A reporting read: it reads the delivery, bounce, send and subscriber tables beside its own, and
writes nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.audience.segments import resolve
from pipeline.db.engine import Store
from pipeline.db.schema import (
    deliveries,
    subscriber_events,
    subscribers,
    tracking_events,
)
from pipeline.delivery.bounces.intake import bounce_counts
from pipeline.delivery.frozen import frozen
from pipeline.delivery.ledger import counts
from pipeline.delivery.sends import SendRow, all_sends, find_send
from pipeline.engagement import ab
from pipeline.errors import CampaignError, NotFoundError
from pipeline.settings.workspace import Workspace

HOURS = 72  # the charts' span: the first three days after each message left
ALL = ("open", "click")
PARALLEL = 4  # reads at once, on PostgreSQL
T = TypeVar("T")


def rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _readers(conn: Connection, send_ids: list[int], kind: str) -> set[int]:
    """The messages (send id << 32 | subscriber id) a reader opened, or clicked in: read off an index."""
    e = tracking_events.c
    query = sa.select(e.send_id, e.subscriber_id).distinct().where(
        e.send_id.in_(send_ids), e.kind == kind, e.machine == sa.false())
    return {send << 32 | reader for send, reader in conn.execute(query)}


def _tallies(conn: Connection, send_ids: list[int], readers: dict[str, set[int]]) -> dict[int, dict[str, int]]:
    """Per send: opens, unique_opens, machine_opens, clicks, unique_clicks, machine_clicks."""
    out = {s: dict.fromkeys(("opens", "unique_opens", "machine_opens", "clicks", "unique_clicks",
                             "machine_clicks"), 0) for s in send_ids}
    e = tracking_events.c
    query = (sa.select(e.send_id, e.kind, e.machine, sa.func.count())
             .where(e.send_id.in_(send_ids)).group_by(e.send_id, e.kind, e.machine))
    for send_id, kind, machine, events in conn.execute(query):
        out[send_id][f"{'machine_' if machine else ''}{'opens' if kind == 'open' else 'clicks'}"] += events
    for kind, name in (("open", "unique_opens"), ("click", "unique_clicks")):
        for message in readers[kind]:
            out[message >> 32][name] += 1
    return out


def _unsubscribes(conn: Connection, campaign: str) -> int:
    """Unsubscribes by a link of this campaign's emails (their events name it; see preferences.detail)."""
    named = json.dumps({"campaign": campaign})
    detail = subscriber_events.c.detail
    return int(conn.execute(sa.select(sa.func.count()).where(
        subscriber_events.c.kind == "unsubscribed",
        sa.or_(detail == named, detail.like(named[:-1].replace("%", r"\%").replace("_", r"\_") + ", %", escape="\\"))
    )).scalar() or 0)


def _links(conn: Connection, workspace: Workspace, sends: list[SendRow]) -> list[dict[str, Any]]:
    from pipeline.audience.tokens import Tokens
    from pipeline.delivery.personalise import Personaliser

    tokens = Tokens.of_workspace(workspace.root)
    tables: dict[int, tuple[str, ...]] = {}
    for send in sends:
        content = frozen(conn, send.id)
        if content is not None:
            tables[send.id] = Personaliser(workspace, content, send.campaign, tokens).links
    clicks: Counter[str] = Counter()
    unique: Counter[str] = Counter()
    for url in (u for table in tables.values() for u in table):
        clicks[url] += 0
    e = tracking_events.c
    query = (sa.select(e.send_id, e.link, sa.func.count(), sa.func.count(sa.distinct(e.subscriber_id)))
             .where(e.send_id.in_(list(tables)), e.kind == "click", e.machine == sa.false())
             .group_by(e.send_id, e.link))
    for send_id, link, events, readers in conn.execute(query):
        table = tables[send_id]
        if 1 <= link <= len(table):
            clicks[table[link - 1]] += events
            unique[table[link - 1]] += readers
    order = sorted(clicks, key=lambda u: (-clicks[u], -unique[u]))
    return [{"url": u, "clicks": clicks[u], "unique_clicks": unique[u]} for u in order]


def _hours(conn: Connection, send_ids: list[int]) -> dict[str, list[int]]:
    """Readers' opens and clicks in each hour after their message left: a count of an index range
    each (a GROUP BY would sort every event)."""
    e = tracking_events.c
    query = sa.select(sa.func.count()).where(
        e.send_id.in_(send_ids), e.kind == sa.bindparam("kind"), e.machine == sa.false(),
        e.since_sent >= sa.bindparam("low"), e.since_sent < sa.bindparam("high"))
    return {name: [int(conn.execute(query, {"kind": kind, "low": h * 3600, "high": h * 3600 + 3600}).scalar() or 0)
                   for h in range(HOURS)] for kind, name in (("open", "opens"), ("click", "clicks"))}


Recipient = tuple[int, str | None, tuple[bool, ...]]  # message, time zone, in each saved segment


def _recipients(conn: Connection, send_ids: list[int], segments: list[Any]) -> list[Recipient]:
    """Every message sent (an erased reader's are not known any more): its key (send id << 32 |
    subscriber id), its reader's time zone, and whether each of `segments` selects them now."""
    columns = [sa.func.coalesce(where, sa.false()).label(f"in_{n}") for n, where in enumerate(segments)]
    query = (sa.select(deliveries.c.send_id, deliveries.c.subscriber_id, subscribers.c.timezone, *columns)
             .select_from(deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id))
             .where(deliveries.c.send_id.in_(send_ids), deliveries.c.state == "sent"))
    return [(row[0] << 32 | row[1], row[2], tuple(bool(v) for v in row[3:])) for row in conn.execute(query)]


def _group(recipients: list[Recipient], readers: dict[str, set[int]], key: Any = None) -> dict[Any, list[int]]:
    """Per key(recipient) (None: all of them), messages sent, uniquely opened and uniquely clicked."""
    out: dict[Any, list[int]] = {}
    opened, clicked = readers["open"], readers["click"]
    for recipient in recipients:
        tally = out.setdefault(key(recipient) if key else None, [0, 0, 0])
        tally[0] += 1
        tally[1] += recipient[0] in opened
        tally[2] += recipient[0] in clicked
    return out


def _rows(name: str, groups: dict[Any, list[int]]) -> list[dict[str, Any]]:
    return [{name: key, "sent": s, "unique_opens": o, "unique_clicks": c, "open_rate": rate(o, s),
             "click_rate": rate(c, s)} for key, (s, o, c) in sorted(groups.items(), key=lambda kv: -kv[1][0])]


def _test(conn: Connection, campaign: str, main: SendRow | None) -> dict[str, Any] | None:
    found = ab.figures(conn, campaign)
    if not found:
        return None
    test = ab.settings_of(conn, main) if main is not None else None
    metric = test.metric if test is not None else "clicks"
    picked = ab.chosen(conn, main) if main is not None else None
    return {"metric": metric, "wait_until": main.scheduled_at if main is not None and picked is None else None,
            "winner": picked,
            "variants": [{"variant": v.label, "subject": v.subject, "sent": v.sent, "unique_opens": v.unique_opens,
                          "unique_clicks": v.unique_clicks, "open_rate": rate(v.unique_opens, v.sent),
                          "click_rate": rate(v.unique_clicks, v.sent)} for v in found]}


def _reading(store: Store, read: Callable[..., T], *args: Any) -> T:
    with store.reading() as conn:
        return read(conn, *args)


def report(store: Store, workspace: Workspace, campaign: str, now: datetime | None = None) -> dict[str, Any]:
    """Everything `campaign report SLUG` shows, as plain data (`--json` prints it as it is).

    On PostgreSQL the large reads (who opened, who clicked, who was sent what, the hours, the
    links) run at once, each on a connection of its own, so the server works on them side by side;
    SQLite reads them one after the other (in this process either way).
    """
    with store.reading() as conn:
        sends = all_sends(conn, campaign)
        if not sends:
            raise NotFoundError(f"campaign {campaign!r} has not been sent yet")
        ids = [s.id for s in sends]
        saved: dict[str, Any] = {}
        for name in workspace.segments:
            try:
                saved[name] = resolve(conn, name, workspace.segments, now=now).where
            except CampaignError:
                continue  # a saved segment that no longer compiles says nothing here
    with ThreadPoolExecutor(max_workers=PARALLEL if store.engine.dialect.name == "postgresql" else 1) as pool:
        opened = pool.submit(_reading, store, _readers, ids, "open")
        clicked = pool.submit(_reading, store, _readers, ids, "click")
        sent_to = pool.submit(_reading, store, _recipients, ids, list(saved.values()))
        hours = pool.submit(_reading, store, _hours, ids)
        links = pool.submit(_reading, store, _links, workspace, sends)
        with store.reading() as conn:
            reported = bounce_counts(conn)
            per_send = []
            for send in sends:
                bounced = reported.get(send.id, {})
                content = frozen(conn, send.id)
                per_send.append({"occurrence": send.occurrence or None, "state": send.state,
                                 "subject": content.subject if content else send.subject,
                                 "sent": counts(conn, send.id)["sent"],
                                 "bounces": bounced.get("hard", 0) + bounced.get("soft", 0),
                                 "complaints": bounced.get("complaint", 0)})
            unsubscribes = _unsubscribes(conn, campaign)
            test = _test(conn, campaign, find_send(conn, campaign))
            readers = {"open": opened.result(), "click": clicked.result()}
            tallies = _tallies(conn, ids, readers)
        recipients = sent_to.result()
        for row in per_send:
            row.update(tallies[sends[per_send.index(row)].id])
        totals = {key: sum(s[key] for s in per_send) for key in (
            "sent", "bounces", "complaints", "opens", "unique_opens", "machine_opens", "clicks", "unique_clicks",
            "machine_clicks")}
        delivered = max(totals["sent"] - totals["bounces"], 0)
        segments = {name: _group([r for r in recipients if r[2][n]], readers).get(None, [0, 0, 0])
                    for n, name in enumerate(saved)}
        data: dict[str, Any] = {
            "campaign": campaign, "subject": per_send[-1]["subject"] if len(per_send) == 1 else None,
            "sent": totals["sent"], "delivered": delivered, "opens": totals["opens"],
            "unique_opens": totals["unique_opens"], "machine_opens": totals["machine_opens"],
            "clicks": totals["clicks"], "unique_clicks": totals["unique_clicks"],
            "machine_clicks": totals["machine_clicks"], "unsubscribes": unsubscribes,
            "bounces": totals["bounces"], "complaints": totals["complaints"],
            "open_rate": rate(totals["unique_opens"], delivered), "click_rate": rate(totals["unique_clicks"], delivered),
            "click_to_open_rate": rate(totals["unique_clicks"], totals["unique_opens"]),
            "unsubscribe_rate": rate(unsubscribes, delivered),
            "links": links.result(),
            "hours": hours.result(),
            "timezones": _rows("timezone", _group(recipients, readers, lambda r: r[1])),
            "segments": _rows("segment", segments),
            "ab": test,
            "sends": per_send,
        }
    return data


def summary(store: Store, workspace: Workspace) -> list[dict[str, Any]]:
    """`campaign report` without a campaign: each sent campaign's figures and rates, in name order."""
    out = []
    with store.reading() as conn:
        sends: dict[str, list[SendRow]] = {}
        for send in all_sends(conn):
            sends.setdefault(send.campaign, []).append(send)
        reported = bounce_counts(conn)
        for campaign in sorted(sends):
            ids = [s.id for s in sends[campaign]]
            tallies = _tallies(conn, ids, {kind: _readers(conn, ids, kind) for kind in ALL})
            sent = sum(counts(conn, i)["sent"] for i in ids)
            bounced = sum(reported.get(i, {}).get("hard", 0) + reported.get(i, {}).get("soft", 0) for i in ids)
            delivered = max(sent - bounced, 0)
            opened = sum(t["unique_opens"] for t in tallies.values())
            clicked = sum(t["unique_clicks"] for t in tallies.values())
            gone = _unsubscribes(conn, campaign)
            out.append({"campaign": campaign, "sent": sent, "delivered": delivered, "unique_opens": opened,
                        "unique_clicks": clicked, "unsubscribes": gone, "bounces": bounced,
                        "open_rate": rate(opened, delivered), "click_rate": rate(clicked, delivered),
                        "unsubscribe_rate": rate(gone, delivered)})
    return out
