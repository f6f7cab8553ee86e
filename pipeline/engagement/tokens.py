"""Tracking tokens: one per message and link, signed, with nothing about the reader readable in them.

A token is 36 URL-safe base64 characters, 27 bytes: the message's header (21 bytes), then the
link's code (6 bytes).

The header says which send, which subscriber and when the message left, sealed as deterministic
authenticated encryption (SIV): its tag is a keyed BLAKE2b of the three numbers, the keystream a
keyed BLAKE2b of the tag. So no one can read whose link it is, and no one without the workspace's
secret can make a header: changing any character of one makes it invalid.

A link's code is a keyed hash of its number, the same in every message: so a message's tokens
cost two hashes however many links it has, which matters because they are made for every message
sent. A reader who swaps the codes of their own message's links gets only their own message's
other links; a code no link has (a typo, a guess) is refused.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

VERSION = b"\x01"
LENGTH = 36  # characters
HEAD = 28  # characters of the header
MAX_LINKS = 4096  # links of one send that can be tracked; the pixel is link 0
EPOCH = 1_577_836_800  # 2020-01-01T00:00:00Z: sending times are seconds since then (32 bits: until 2156)
_PLAIN = struct.Struct(">III")
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_STANDARD = bytes.maketrans(b"-_", b"+/")
_SHAPE = re.compile(r"^[A-Za-z0-9_-]{36}$")
_blake2b = hashlib.blake2b
_b2a = binascii.b2a_base64
_from_bytes = int.from_bytes


@dataclass(frozen=True)
class Reading:
    """What a valid token says."""

    send_id: int
    subscriber_id: int
    sent_at: datetime
    link: int  # 0: the open pixel


class TrackingTokens:
    """Tokens made and read with keys derived from the workspace's secret."""

    def __init__(self, secret: str) -> None:
        root = _blake2b(secret.encode("utf-8"), digest_size=64, person=b"campaign-track").digest()
        self._mark_key = root[:32]  # BLAKE2 has no length extension: key || message is a sound MAC
        self._seal_key = root[32:]
        code_key = _blake2b(root, digest_size=32, person=b"track-links").digest()
        self.codes = [_b2a(_blake2b(code_key + n.to_bytes(2, "big"), digest_size=6).digest(), newline=False)
                      .translate(_URLSAFE) for n in range(MAX_LINKS + 1)]
        self._numbers = {code.decode("ascii"): n for n, code in enumerate(self.codes)}

    def code(self, number: int) -> str:
        """Link `number`'s code, as it ends each of its tokens."""
        return self.codes[number].decode("ascii")

    def _stream(self, mark: bytes) -> int:
        return _from_bytes(_blake2b(self._seal_key + mark, digest_size=12).digest(), "big")

    def message(self, send_id: int, subscriber_id: int, sent_at: int) -> bytes:
        """The header of one message's tokens (sent at `sent_at`, Unix seconds): link n's token is
        the header, then code(n)."""
        number = (send_id << 64) | (subscriber_id << 32) | (sent_at - EPOCH)
        mark = _blake2b(self._mark_key + number.to_bytes(12, "big"), digest_size=8).digest()
        stream = _from_bytes(_blake2b(self._seal_key + mark, digest_size=12).digest(), "big")
        return _b2a(VERSION + mark + (number ^ stream).to_bytes(12, "big"), newline=False).translate(_URLSAFE)

    def token(self, head: bytes, number: int) -> str:
        return (head + self.codes[number]).decode("ascii")

    def read(self, token: str) -> Reading | None:
        """What a token says; None for anything this workspace did not make (or a part of one)."""
        if not _SHAPE.match(token):
            return None
        number = self._numbers.get(token[HEAD:])
        raw = binascii.a2b_base64(token[:HEAD].encode("ascii").translate(_STANDARD))
        if number is None or raw[:1] != VERSION:
            return None
        mark = raw[1:9]
        plain = (_from_bytes(raw[9:21], "big") ^ self._stream(mark)).to_bytes(12, "big")
        if not hmac.compare_digest(_blake2b(self._mark_key + plain, digest_size=8).digest(), mark):
            return None
        send_id, subscriber_id, seconds = _PLAIN.unpack(plain)
        return Reading(send_id, subscriber_id, datetime.fromtimestamp(EPOCH + seconds, UTC), number)
