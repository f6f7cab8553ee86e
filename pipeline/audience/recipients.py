"""What a recipient's copy is filled in with: their fields and their own signed links."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.audience.segments import sample, segment_or_everyone
from pipeline.audience.subscribers import Subscriber, find
from pipeline.audience.tokens import Tokens
from pipeline.content.build import SAMPLE, recipient_links, sample_values
from pipeline.db.engine import Store
from pipeline.settings.campaign import load_campaign
from pipeline.settings.workspace import Workspace

PREVIEW_RECIPIENTS = 25


def recipient_values(workspace: Workspace, tokens: Tokens, subscriber: Subscriber,
                     campaign: str | None = None) -> dict[str, object]:
    return {**subscriber.merge_values(), **recipient_links(workspace, tokens.make(subscriber.id, campaign))}


def _label(subscriber: Subscriber) -> str:
    return f"{subscriber.name} <{subscriber.email}>" if subscriber.name else subscriber.email


def preview_recipients(workspace: Workspace, store: Store, tokens: Tokens, slug: str,
                       also: str | None = None) -> list[tuple[str, Mapping[str, object]]]:
    """The sample, then the first recipients of the campaign's segment (and `also`, if asked for)."""
    settings = load_campaign(workspace, slug)
    chosen: list[Subscriber] = []
    with store.reading() as conn:
        segment = segment_or_everyone(conn, settings.segment, workspace.segments)
        chosen = sample(conn, segment, PREVIEW_RECIPIENTS)
        if also and also != SAMPLE and all(s.email.lower() != also.lower() for s in chosen):
            extra = find(conn, also)
            if extra is not None:
                chosen.insert(0, extra)
    return [(SAMPLE, sample_values(workspace))] + [
        (_label(s), recipient_values(workspace, tokens, s, slug)) for s in chosen]
