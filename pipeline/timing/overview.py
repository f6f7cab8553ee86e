"""`campaign list`: every campaign of the workspace with where it stands and when it is next due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipeline.db.engine import Store
from pipeline.delivery.ledger import counts, pending
from pipeline.delivery.sends import SendRow, all_sends
from pipeline.settings.campaign import load_campaign
from pipeline.settings.workspace import Workspace
from pipeline.timing.recurring import series


@dataclass(frozen=True)
class CampaignLine:
    slug: str
    state: str  # draft, recurring, or the latest send's state
    due: datetime | None  # the next instant something of it is due
    sent: int
    total: int
    subject: str


def overview(store: Store, workspace: Workspace, now: datetime) -> list[CampaignLine]:
    """One line per campaign folder, in name order; a campaign's latest send speaks for it."""
    lines = []
    with store.reading() as conn:
        latest: dict[str, SendRow] = {}
        for send in all_sends(conn):
            latest[send.campaign] = send  # ordered by occurrence: the last is the latest
        for slug in workspace.campaign_slugs():
            settings = load_campaign(workspace, slug)
            running = series(conn, workspace, settings) if settings.recurrence else None
            send = latest.get(slug)
            if running is not None:
                state = "recurring"
                due: datetime | None = running.recurrence.next_after(
                    max(now, running.last_occurrence or running.started_at))
            elif send is None:
                state, due = "draft", None
            else:
                state = send.state
                due = send.scheduled_at if send.state == "scheduled" else pending(conn, send.id)[1]
            tally = counts(conn, send.id) if send is not None else {}
            lines.append(CampaignLine(slug, state, due, tally.get("sent", 0), sum(tally.values()), settings.subject))
    return lines
