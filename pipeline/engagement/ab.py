"""Subject tests ([ab] in a campaign's settings.toml): the test group first, then the winner to the rest.

A test is a send per subject (occurrences "test-A", "test-B", ...), each with its content frozen
under its subject and its share of the test group fixed in the same transaction, and the
campaign's own send (occurrence "") scheduled for the end of the wait. Who is in the test, and
with which subject, is a hash of the subscriber's id and the campaign: the same reader always
falls in the same place, the groups never overlap, and each is a UNIQUE delivery row of its own
send. When the wait is over, the tick picks the subject whose readers opened or clicked most
(unique human readers per message sent; a tie goes to the first) and sends the winner's frozen
content to the rest: the segment as it is then, without anyone who had a delivery of the test.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.audience.segments import Segment, count, segment_or_everyone
from pipeline.clock import human
from pipeline.content.build import Content, build_campaign
from pipeline.db.engine import Store
from pipeline.db.schema import deliveries, subscribers, tracking_events
from pipeline.delivery.frozen import freeze, frozen
from pipeline.delivery.ledger import counts, snapshot
from pipeline.delivery.sends import (
    SendRow,
    all_sends,
    create_send,
    find_send,
    history,
    record,
    set_send_state,
)
from pipeline.errors import SendError
from pipeline.settings.campaign import ABTest, load_campaign
from pipeline.settings.workspace import Workspace

PREFIX = "test-"  # a variant's occurrence: test-A, test-B...
STARTED, WINNER = "ab-test", "ab-winner"  # the campaign's send's history events
_SCALE = 2**32
_MULTIPLIER = 2654435761  # Knuth's: consecutive ids spread evenly over the 32-bit range


def label(index: int) -> str:
    return chr(ord("A") + index)


def variants(conn: Connection, campaign: str) -> list[SendRow]:
    """The campaign's test sends, A first."""
    return [s for s in all_sends(conn, campaign) if s.occurrence.startswith(PREFIX)]


def siblings(conn: Connection, send: SendRow) -> list[SendRow]:
    """The other subjects' sends of the test `send` is one of, while they are sending."""
    if not send.occurrence.startswith(PREFIX):
        return []
    return [s for s in variants(conn, send.campaign) if s.id != send.id and s.state == "sending"]


def _bucket(campaign: str) -> sa.ColumnElement[int]:
    salt = zlib.crc32(campaign.encode("utf-8"))
    return (subscribers.c.id * sa.literal(_MULTIPLIER, sa.BigInteger) + sa.literal(salt, sa.BigInteger)) % \
        sa.literal(_SCALE, sa.BigInteger)


def share(segment: Segment, campaign: str, test: ABTest, index: int | None = None) -> Segment:
    """The part of `segment` in the test (all of it, or only variant `index`'s)."""
    k = len(test.subjects)
    low = 0 if index is None else int(_SCALE * test.test_share * index / k)
    high = int(_SCALE * test.test_share * ((index + 1) / k if index is not None else 1))
    bucket = _bucket(campaign)
    name = "test" if index is None else f"test {label(index)}"
    return Segment(f"{segment.label} ({name})", segment.expression,
                   sa.and_(segment.where, bucket >= low, bucket < high))


def test_size(conn: Connection, campaign: str, test: ABTest, segment: Segment) -> int:
    return count(conn, share(segment, campaign, test))


def plan_content(content: Content, test: ABTest) -> Content:
    """What `send` shows of a test about to begin: every subject."""
    return replace(content, subject=" | ".join(test.subjects))


def _in_progress(conn: Connection, campaign: str) -> SendRow | None:
    """The campaign's send while its test runs (its variants made, the rest not yet)."""
    main = find_send(conn, campaign)
    if main is None or main.snapshot_at is not None or not variants(conn, campaign):
        return None
    return main


def begin(conn: Connection, campaign: str, test: ABTest | None, content: Content, segment: Segment,
          now: datetime) -> SendRow | None:
    """In the caller's transaction: start a campaign's test (returns its first variant), refuse
    while one waits for its winner, or None when the send is no test and goes on as usual."""
    waiting = _in_progress(conn, campaign)
    if waiting is not None:
        raise SendError(f"{campaign} is testing its subjects; the tick sends the winner to everyone else at "
                        f"{human(waiting.scheduled_at)} ('campaign report {campaign}' shows how the test stands)")
    main = find_send(conn, campaign)
    if test is None or (main is not None and main.snapshot_at is not None):
        return None
    return start(conn, campaign, test, content, segment, now)[0]


def start(conn: Connection, campaign: str, test: ABTest, content: Content, segment: Segment,
          now: datetime) -> list[SendRow]:
    """One send per subject, its share of the test group fixed and its content frozen; the
    campaign's own send waits, scheduled for the end of the wait."""
    made = []
    for index, subject in enumerate(test.subjects):
        occurrence = PREFIX + label(index)
        send = create_send(conn, campaign, segment=segment.expression, subject=subject, state="sending", now=now,
                           occurrence=occurrence)
        snapshot(conn, send, share(segment, campaign, test, index), now)
        freeze(conn, send.id, replace(content, subject=subject))
        made.append(find_send(conn, campaign, occurrence) or send)
    until = now + test.wait
    main = create_send(conn, campaign, segment=segment.expression, subject=" | ".join(test.subjects),
                       state="scheduled", now=now, scheduled_at=until)
    set_send_state(conn, main.id, "scheduled", now, scheduled_at=until)
    record(conn, main.id, STARTED, now, json.dumps({
        "subjects": list(test.subjects), "test_share": test.test_share, "wait": test.wait.total_seconds(),
        "metric": test.metric}))
    return made


def settings_of(conn: Connection, main: SendRow) -> ABTest | None:
    """The test as it was started (settings.toml may have changed since)."""
    started = [e for e in history(conn, main.id) if e.event == STARTED]
    if not started or not started[-1].detail:
        return None
    data = json.loads(started[-1].detail)
    return ABTest(tuple(data["subjects"]), data["test_share"], timedelta(seconds=data["wait"]), data["metric"])


@dataclass(frozen=True)
class Variant:
    label: str
    send_id: int
    subject: str
    sent: int
    unique_opens: int
    unique_clicks: int

    def rate(self, metric: str) -> float:
        readers = self.unique_clicks if metric == "clicks" else self.unique_opens
        return readers / self.sent if self.sent else 0.0


def _readers(conn: Connection, send_id: int, kind: str) -> int:
    return int(conn.execute(sa.select(sa.func.count(sa.distinct(tracking_events.c.subscriber_id))).where(
        tracking_events.c.send_id == send_id, tracking_events.c.kind == kind,
        tracking_events.c.machine == sa.false())).scalar() or 0)


def figures(conn: Connection, campaign: str) -> list[Variant]:
    out = []
    for send in variants(conn, campaign):
        content = frozen(conn, send.id)
        out.append(Variant(send.occurrence[len(PREFIX):], send.id, content.subject if content else send.subject or "",
                           counts(conn, send.id)["sent"], _readers(conn, send.id, "open"),
                           _readers(conn, send.id, "click")))
    return out


def winner(found: list[Variant], metric: str) -> Variant | None:
    best = None
    for variant in found:
        if best is None or variant.rate(metric) > best.rate(metric):
            best = variant
    return best


def chosen(conn: Connection, main: SendRow) -> dict[str, object] | None:
    """The winner as it was picked, if it was."""
    picked = [e for e in history(conn, main.id) if e.event == WINNER]
    return json.loads(picked[-1].detail) if picked and picked[-1].detail else None


def _tested(variant_ids: list[int]) -> sa.Select[tuple[int]]:
    # Read only: who had a delivery of the test (the deliveries table is delivery.ledger's).
    return sa.select(deliveries.c.subscriber_id).where(deliveries.c.send_id.in_(variant_ids),
                                                       deliveries.c.subscriber_id.is_not(None))


def start_due(store: Store, workspace: Workspace, send: SendRow, now: datetime) -> int | None:
    """The tick's part in a test, for a due scheduled send: start the test of a campaign scheduled
    with [ab], or, once its wait is over, send the winner to the rest. Returns how many
    recipients it fixed; None when the send is no test (the tick starts it as usual)."""
    if send.occurrence:
        return None
    with store.reading() as conn:
        tested = variants(conn, send.campaign)
    if tested:
        return _send_rest(store, workspace, now, send.campaign)
    test = load_campaign(workspace, send.campaign).ab
    if test is None:
        return None
    content = build_campaign(workspace, send.campaign).require_clean().content
    with store.transaction() as conn:
        current = find_send(conn, send.campaign)
        if current is None or current.state != "scheduled" or current.snapshot_at is not None:
            return 0  # another process started it, or it was paused meanwhile
        target = segment_or_everyone(conn, current.segment, workspace.segments, now=now)
        made = start(conn, send.campaign, test, content, target, now)
        return sum(counts(conn, v.id)["queued"] for v in made)


def _send_rest(store: Store, workspace: Workspace, now: datetime, campaign: str) -> int:
    from pipeline.timing.schedule import default_zone, spread_local_time

    with store.transaction() as conn:
        main = find_send(conn, campaign)
        if main is None or main.state != "scheduled" or main.snapshot_at is not None:
            return 0
        test = settings_of(conn, main) or load_campaign(workspace, campaign).ab
        metric = test.metric if test is not None else "clicks"
        found = figures(conn, campaign)
        best = winner(found, metric)
        assert best is not None
        content = frozen(conn, best.send_id)
        if content is None:
            raise SendError(f"{campaign}: the test send {PREFIX}{best.label} has no frozen content")
        target = segment_or_everyone(conn, main.segment, workspace.segments, now=now)
        rest = Segment(target.label, target.expression,
                       sa.and_(target.where, subscribers.c.id.not_in(_tested([v.send_id for v in found]))))
        set_send_state(conn, main.id, "sending", now, subject=content.subject)
        made = snapshot(conn, main, rest, main.scheduled_at or now)
        freeze(conn, main.id, content)
        if main.local_time:
            spread_local_time(conn, main, default_zone(workspace, main.timezone))
        record(conn, main.id, WINNER, now, json.dumps({
            "variant": best.label, "subject": best.subject, "metric": metric,
            "rates": {v.label: round(v.rate(metric), 4) for v in found}}))
        return made
