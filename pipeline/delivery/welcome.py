"""The welcome message: the campaign folder named by [signup] welcome, sent once to each subscriber
who confirms through the signup form.

It goes through the machinery every campaign uses: a send row, and one delivery row per
subscriber (UNIQUE per send), added in the transaction that confirms them and due at once; the
tick (`campaign send-due` or `campaign scheduler`) sends it, with its claims, retries and
`unknown` rows. A subscriber confirms only once (pending becomes subscribed once), so they get
one welcome.

Content is frozen per send, as everywhere. A welcome's send is named by its content: occurrence
"welcome:" and the first 12 hex digits of the content hash. While the folder builds the same
email, every new subscriber joins the same send; after an edit, the next confirmation starts a new
send with the new content, and whoever was queued before still gets the copy frozen for them. A
folder that does not build (lint errors, a missing article) never blocks a confirmation: the
subscriber joins the latest welcome send, or, before there is any, gets no welcome (logged).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Connection

from pipeline.content.build import Content, build_campaign
from pipeline.delivery.frozen import freeze, frozen
from pipeline.delivery.ledger import add_delivery
from pipeline.delivery.sends import (
    SendRow,
    all_sends,
    create_send,
    find_send,
    mark_snapshot,
    reopen,
)
from pipeline.errors import CampaignError
from pipeline.settings.workspace import Workspace

PREFIX = "welcome:"
AUDIENCE = "each subscriber as they confirm"  # what the send row says of its recipients
log = logging.getLogger("campaign.web")


def occurrence(content: Content) -> str:
    return PREFIX + content.digest[:12]


def current_content(workspace: Workspace) -> Content | None:
    """The welcome campaign as it builds now (outside any transaction: it reads the folder);
    None without a welcome, or when it does not build."""
    slug = workspace.signup.welcome
    if slug is None:
        return None
    try:
        return build_campaign(workspace, slug).require_clean().content
    except CampaignError as exc:
        log.error("the welcome campaign %s does not build, so new subscribers join its latest send: %s", slug, exc)
        return None


def sends_of(conn: Connection, slug: str) -> list[SendRow]:
    """The welcome sends of a campaign, oldest first."""
    return sorted((s for s in all_sends(conn, slug) if s.occurrence.startswith(PREFIX)), key=lambda s: s.id)


def queue(conn: Connection, slug: str, content: Content | None, subscriber_id: int, now: datetime) -> SendRow | None:
    """Add the subscriber to the welcome send of `content` (made, with its content frozen, if it
    is new), due now; returns the send, or None when there is nothing to send them."""
    if content is None:
        existing = sends_of(conn, slug)
        if not existing:
            log.error("no welcome queued for subscriber %s: %s has never built", subscriber_id, slug)
            return None
        send = existing[-1]
    else:
        send = find_send(conn, slug, occurrence(content)) or create_send(
            conn, slug, segment=AUDIENCE, subject=content.subject, state="sending", now=now,
            occurrence=occurrence(content))
        if frozen(conn, send.id) is None:
            mark_snapshot(conn, send.id, now)
            freeze(conn, send.id, content)
    if add_delivery(conn, send.id, subscriber_id, now, now) and send.state == "sent":
        reopen(conn, send.id, now, "a new subscriber confirmed")
    return find_send(conn, slug, send.occurrence)
