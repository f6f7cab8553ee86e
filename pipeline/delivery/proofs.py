"""Proofs: "[TEST]" copies of a campaign (`campaign test-send`), outside its deliveries.

Each address is tried and answered for on its own, so one refusal does not hide the others;
an address that is not one is refused before anything connects.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.audience.addresses import InvalidEmail, normalize_email
from pipeline.audience.recipients import lookup, sample_recipient
from pipeline.audience.tokens import Tokens
from pipeline.content.build import build_campaign
from pipeline.db.engine import Store
from pipeline.delivery.mime import MessageFactory
from pipeline.delivery.personalise import Personaliser
from pipeline.delivery.transports import (
    Connection,
    ConnectionFactory,
    PermanentFailure,
    TemporaryFailure,
    UncertainDelivery,
)
from pipeline.errors import SendError
from pipeline.settings.workspace import Workspace

TEST_PREFIX = "[TEST] "


@dataclass(frozen=True)
class Proof:
    address: str
    delivered: bool
    reply: str  # the server's answer: "250 ..." or its refusal


def check_addresses(addresses: Sequence[str]) -> list[str]:
    """The addresses, normalised; the first that is not an e-mail address is a SendError."""
    checked = []
    for address in addresses:
        try:
            checked.append(normalize_email(address))
        except InvalidEmail as exc:
            raise SendError(f"--to {address!r} is not an e-mail address: {exc}") from None
    return checked


def test_send(store: Store, workspace: Workspace, slug: str, addresses: Sequence[str],
              connect: ConnectionFactory) -> list[Proof]:
    """Send "[TEST]" copies to addresses, filled in with their subscriber data or sample data.

    Deliveries are not touched; each copy has a fresh Message-ID, so inboxes never fold a second
    test into the first.
    """
    checked = check_addresses(addresses)
    content = build_campaign(workspace, slug).require_clean().content
    personaliser = Personaliser(workspace, content, slug, Tokens.of_workspace(workspace.root), TEST_PREFIX)
    factory = MessageFactory(personaliser, 0)
    proofs = []
    connection: Connection | None = None
    try:
        for address in checked:
            with store.reading() as conn:
                recipient = lookup(conn, address) or sample_recipient(address)
            _, message = factory.build(recipient, message_id=f"<test.{secrets.token_hex(8)}@{factory.domain}>")
            if connection is None:
                connection = connect()
            try:
                proofs.append(Proof(recipient.email, True, connection.send(factory.envelope_from, recipient.email,
                                                                           message)))
            except (TemporaryFailure, PermanentFailure, UncertainDelivery) as exc:
                proofs.append(Proof(recipient.email, False, exc.reply))
                if not isinstance(exc, PermanentFailure):  # the connection may be gone: a fresh one next
                    connection.close()
                    connection = None
    finally:
        if connection is not None:
            connection.close()
    return proofs
