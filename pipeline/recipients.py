"""What a recipient's copy is filled in with: their fields and their own signed links."""

from __future__ import annotations

from pipeline.build import recipient_links
from pipeline.settings import Workspace
from pipeline.subscribers import Subscriber
from pipeline.tokens import Tokens


def recipient_values(workspace: Workspace, tokens: Tokens, subscriber: Subscriber,
                     campaign: str | None = None) -> dict[str, object]:
    return {**subscriber.merge_values(), **recipient_links(workspace, tokens.make(subscriber.id, campaign))}
