"""A send's message factory, tracked as its campaign's [tracking] says (see pipeline.engagement).

Every sender of a send (`campaign send`, the tick, `campaign worker`) makes its factory here, so
they all track the same way: opens and clicks as the settings say now, and nobody who said no.
"""

from __future__ import annotations

from pipeline.audience.tokens import Tokens
from pipeline.content.build import Content
from pipeline.db.engine import Store
from pipeline.delivery.mime import MessageFactory
from pipeline.delivery.personalise import Personaliser
from pipeline.engagement.policy import plan_for
from pipeline.settings.workspace import Workspace


def send_factory(store: Store, workspace: Workspace, content: Content, campaign: str, send_id: int,
                 tokens: Tokens) -> MessageFactory:
    """The MessageFactory of one send: its frozen content, each reader's copy tracked or not."""
    personaliser = Personaliser(workspace, content, campaign, tokens)
    return MessageFactory(personaliser, send_id, plan_for(store, personaliser.tracking))
