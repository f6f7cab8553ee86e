"""One recipient's message as MIME bytes, built from parts prepared once per campaign.

email.message.EmailMessage costs about 2 ms a message; this builds the same standard message
(multipart/alternative, text then HTML, UTF-8, base64 bodies, RFC 2047 headers, CRLF) from
parts prepared once, so a recipient costs a few encoded blocks around the merge values and a
few header lines. No subscriber value reaches a header unencoded: CR, LF and other controls
are removed and anything not plain ASCII becomes an encoded word.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from pipeline.audience.recipients import Recipient
from pipeline.content.merge import Prepared, Slot
from pipeline.delivery.message_ids import make_message_id
from pipeline.delivery.personalise import Personaliser
from pipeline.errors import MessageError

CRLF = "\r\n"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ATOM_SAFE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*$")  # a display name needing no quotes
# Signed so that nobody can change who a message is from, to, about, or how to leave the list.
DKIM_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id",
                b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version", b"content-type"]


def one_line(value: object) -> str:
    """A value as header material: controls gone, whitespace collapsed."""
    return " ".join(_CONTROL.sub(" ", str(value)).split())


def encode_words(text: str) -> str:
    """RFC 2047 encoded words for non-ASCII header text, each under 76 characters, folded."""
    words: list[str] = []
    chunk = ""
    for char in text:
        # 45 bytes of UTF-8 become 60 base64 characters, inside "=?utf-8?b?...?=": 72 in all.
        if len((chunk + char).encode("utf-8")) > 45:
            words.append(chunk)
            chunk = ""
        chunk += char
    if chunk:
        words.append(chunk)
    return (CRLF + " ").join(f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words)


def header_text(text: str) -> str:
    """Unstructured header text (Subject): as it is when plain ASCII, encoded words otherwise."""
    clean = one_line(text)
    if clean.isascii() and len(clean) <= 900:
        return clean
    return encode_words(clean)


def address(name: str | None, mailbox: str) -> str:
    """A mailbox header value with an optional display name, quoted or encoded as needed."""
    mailbox = one_line(mailbox).replace(" ", "")
    clean = one_line(name or "")
    if not clean:
        return f"<{mailbox}>" if not mailbox.isascii() else mailbox
    if not clean.isascii():
        return f"{encode_words(clean)} <{mailbox}>"
    if _ATOM_SAFE.match(clean):
        return f"{clean} <{mailbox}>"
    quoted = clean.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{mailbox}>'


class Base64Part:
    """A body part's base64 (76-character lines, CRLF), filled in per recipient cheaply.

    Base64 turns each 57 bytes of input into one line, so every run of whole 57-byte blocks
    of a static piece encodes the same for every recipient whose merge values leave the piece
    at the same offset within a block. Those runs are encoded once per (piece, offset), at
    most 57 times, and reused; per recipient only the blocks that hold merge values and the
    seams around them are encoded. Encoding 30 KB of HTML afresh costs about 80 µs in Python;
    this costs a few.
    """

    BLOCK = 57

    def __init__(self, prepared: Prepared, html: bool, defaults: Mapping[str, str]) -> None:
        self.pieces: list[bytes | Slot] = [p.encode("utf-8") if isinstance(p, str) else p for p in prepared.parts]
        self.html = html
        self.defaults = defaults
        self.cache: dict[tuple[int, int], tuple[bytes, bytes]] = {}

    def _run(self, index: int, start: int) -> tuple[bytes, bytes]:
        """The encoded whole blocks of piece[start:], and the bytes left over."""
        body = self.pieces[index]
        assert isinstance(body, bytes)
        body = body[start:]
        full = len(body) // self.BLOCK * self.BLOCK
        lines = [_line(body[i:i + self.BLOCK]) for i in range(0, full, self.BLOCK)]
        return b"".join(lines), body[full:]

    def encode(self, values: Mapping[str, object]) -> list[bytes]:
        """The encoded lines, in runs: joined once, into the whole message."""
        out: list[bytes] = []
        carry = b""
        for index, piece in enumerate(self.pieces):
            if isinstance(piece, bytes):
                start = 0
                if carry:
                    start = self.BLOCK - len(carry)
                    if len(piece) < start:
                        carry += piece
                        continue
                    out.append(_line(carry + piece[:start]))
                key = (index, start)
                run = self.cache.get(key)
                if run is None:
                    run = self.cache[key] = self._run(index, start)
                out.append(run[0])
                carry = run[1]
                continue
            carry += piece.value(values, self.html, self.defaults).encode("utf-8")
            while len(carry) >= self.BLOCK:
                out.append(_line(carry[:self.BLOCK]))
                carry = carry[self.BLOCK:]
        if carry:
            out.append(_line(carry))
        return out


def _line(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False) + b"\r\n"


class Dkim:
    def __init__(self, selector: str, domain: str, key_path: Path) -> None:
        import dkim  # here, not at the top: dkimpy costs 30 ms at start-up and only signing needs it

        self._sign = dkim.sign
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        try:
            self.key = key_path.read_bytes()
            dkim.sign(b"From: a@b\r\n\r\nx\r\n", self.selector, self.domain, self.key,
                      include_headers=[b"from"])
        except (OSError, dkim.KeyFormatError, dkim.DKIMException) as exc:
            raise MessageError(f"the DKIM key cannot be used: {exc}", where=key_path) from None

    def sign(self, message: bytes) -> bytes:
        return self._sign(message, self.selector, self.domain, self.key, include_headers=DKIM_HEADERS,
                          canonicalize=(b"relaxed", b"relaxed"), linesep=b"\r\n")


class MessageFactory:
    """Everything about a campaign's messages that is the same for every recipient, prepared once."""

    def __init__(self, personaliser: Personaliser, send_id: int) -> None:
        workspace = personaliser.workspace
        sending = workspace.sending
        self.personaliser = personaliser
        self.slug = personaliser.slug
        self.send_id = send_id
        self.secret = personaliser.tokens.secret
        defaults = personaliser.defaults
        self.html = Base64Part(personaliser.html, True, defaults)
        self.text = Base64Part(personaliser.text, False, defaults)
        self.domain = workspace.sender.from_address.rsplit("@", 1)[1]
        self.boundary = f"=_part_{secrets.token_hex(12)}"
        self.envelope_from = sending.return_path
        static = [
            f"From: {address(workspace.sender.from_name, workspace.sender.from_address)}",
            *([f"Reply-To: {address(None, workspace.sender.reply_to)}"] if workspace.sender.reply_to else []),
            "MIME-Version: 1.0",
            f"List-Id: {header_text(sending.list_id)}",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "Precedence: bulk",
            f'Content-Type: multipart/alternative; boundary="{self.boundary}"',
        ]
        self.static_headers = CRLF.join(static)
        self.text_head = (f"--{self.boundary}{CRLF}Content-Type: text/plain; charset=\"utf-8\"{CRLF}"
                          f"Content-Transfer-Encoding: base64{CRLF}{CRLF}").encode("ascii")
        self.html_head = (f"--{self.boundary}{CRLF}Content-Type: text/html; charset=\"utf-8\"{CRLF}"
                          f"Content-Transfer-Encoding: base64{CRLF}{CRLF}").encode("ascii")
        self.tail = f"--{self.boundary}--{CRLF}".encode("ascii")
        self.mailto = workspace.unsubscribe_mailto
        self.dkim = (Dkim(sending.dkim_selector, self.domain, sending.dkim_key)
                     if sending.dkim_selector and sending.dkim_key else None)
        self._date = (0, "")

    def date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:  # formatting a date costs more than the rest of the headers
            # "+0000", not the obsolete "GMT" (RFC 5322 4.3), nor "-0000", which means "zone unknown".
            self._date = (now, format_datetime(datetime.fromtimestamp(now, UTC)))
        return self._date[1]

    def message_id(self, subscriber_id: int | None) -> str:
        return make_message_id(self.slug, self.send_id, subscriber_id or 0, self.domain, self.secret)

    def build(self, recipient: Recipient, message_id: str | None = None) -> tuple[str, bytes]:
        """The Message-ID and the complete message for one recipient."""
        values = self.personaliser.values(recipient)
        subject = self.personaliser.subject.fill(values, html=False, defaults=self.personaliser.defaults)
        message_id = message_id or self.message_id(recipient.subscriber_id)
        unsubscribe = f"<{values['unsubscribe_url']}>"
        if self.mailto:
            token = str(values["unsubscribe_url"]).rsplit("/", 1)[-1]
            unsubscribe += f", <mailto:{self.mailto}?subject=unsubscribe%20{token}>"
        headers = CRLF.join([
            f"Date: {self.date()}",
            self.static_headers,
            f"To: {address(recipient.name, recipient.email)}",
            f"Subject: {header_text(subject)}",
            f"Message-ID: {message_id}",
            f"List-Unsubscribe: {unsubscribe}",
        ])
        # Base64 lines hold only [A-Za-z0-9+/=], so the boundary ("=_part_...") can never occur in them.
        message = b"".join([headers.encode("utf-8"), b"\r\n\r\n", self.text_head, *self.text.encode(values),
                            self.html_head, *self.html.encode(values), self.tail])
        if self.dkim is not None:
            message = self.dkim.sign(message) + message
        return message_id, message

