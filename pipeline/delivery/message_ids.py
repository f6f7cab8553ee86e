"""Message-IDs that are the same every time a (send, subscriber) pair is mailed.

A resend after a crash carries the same Message-ID, so receiving systems can drop the second
copy; a bounce or complaint that quotes it leads back to the send and the subscriber.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_PATTERN = re.compile(r"<?([a-z0-9-]+)\.(\d+)\.(\d+)\.([0-9a-f]{12})@([^>\s]+)>?")


@dataclass(frozen=True)
class MessageRef:
    campaign: str
    send_id: int
    subscriber_id: int


def _digest(campaign: str, send_id: int, subscriber_id: int, secret: str) -> str:
    return hashlib.sha256(f"{campaign}:{send_id}:{subscriber_id}:{secret}".encode()).hexdigest()[:12]


def make_message_id(campaign: str, send_id: int, subscriber_id: int, domain: str, secret: str) -> str:
    """<back-pain.7.1042.5f2a9c0d1e3b@clinic.example>: readable, and not guessable without the secret."""
    return f"<{campaign}.{send_id}.{subscriber_id}.{_digest(campaign, send_id, subscriber_id, secret)}@{domain}>"


def parse_message_id(value: str, secret: str) -> MessageRef | None:
    """The send and subscriber a Message-ID of ours names; None for anyone else's or a forged one."""
    match = _PATTERN.search(value.strip())
    if not match:
        return None
    campaign, send_id, subscriber_id, digest = match.group(1), int(match.group(2)), int(match.group(3)), match.group(4)
    if _digest(campaign, send_id, subscriber_id, secret) != digest:
        return None
    return MessageRef(campaign, send_id, subscriber_id)
