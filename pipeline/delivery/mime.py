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
import operator
import re
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from pipeline.audience.recipients import Recipient
from pipeline.content.images import embedded
from pipeline.content.merge import Prepared, Slot
from pipeline.delivery.message_ids import make_message_id
from pipeline.delivery.personalise import Personaliser
from pipeline.engagement.links import NOTICE, TokenSlot
from pipeline.engagement.policy import TrackingPlan
from pipeline.engagement.tokens import HEAD, TrackingTokens
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

    Base64 turns each 57 bytes of input into one line, so a run of literal text encodes the same
    for every recipient whose merge values leave it at the same offset within a block. Each run
    of pieces between merge values (literal text, and the fixed-length slots a tracked send's
    tokens go in) is worked out once per offset, at most 57 times: its whole blocks without a
    recipient's bytes are encoded then; the blocks with them (the seam after a merge value, the
    ones a token falls in) become one bytes template. Per recipient that is one formatting, one
    base64 call and a few slices per run. Encoding 30 KB of HTML afresh costs about 80 µs in
    Python; this costs a few.
    """

    BLOCK = 57

    def __init__(self, prepared: Prepared, html: bool, defaults: Mapping[str, str]) -> None:
        self.pieces: list[bytes | Slot] = [p.encode("utf-8") if isinstance(p, str) else p for p in prepared.parts]
        # Merge values change length from one recipient to the next; literal text and token slots do not.
        self.merges: list[Slot | None] = [p if isinstance(p, Slot) and not isinstance(p, TokenSlot) else None
                                          for p in self.pieces]
        self.html = html
        self.defaults = defaults
        self.runs: list[list[_Run | None]] = [[None] * self.BLOCK for _ in self.pieces]  # by piece, then carry length

    def encode(self, values: Mapping[str, object], head: bytes | None = None) -> list[bytes]:
        """The encoded lines, in runs: joined once, into the whole message. `head` is the message's
        token header (engagement.tokens), for a tracked part."""
        out: list[bytes] = []
        carry = b""
        index, end = 0, len(self.pieces)
        merges, runs, html, defaults = self.merges, self.runs, self.html, self.defaults
        while index < end:
            merge = merges[index]
            if merge is not None:
                carry += merge.value(values, html, defaults).encode("utf-8")
                while len(carry) >= 57:
                    out.append(_line(carry[:57]))
                    carry = carry[57:]
                index += 1
                continue
            run = runs[index][len(carry)]
            if run is None:
                run = runs[index][len(carry)] = _Run(self.pieces, merges, index, len(carry))
            index = run.end
            if run.seam:  # the usual run, inlined: only the seam after a merge value is the recipient's
                if run.holes:
                    out.append(binascii.b2a_base64(carry + run.suffix, newline=False) + CRLF_BYTES)
                    out += run.after
                    carry = run.static_rest
                else:
                    carry += run.suffix
            elif not run.order:
                out += run.items
                carry = run.static_rest
            else:
                assert head is not None, "a tracked part is encoded with the message's tokens"
                carry = run.fill(carry, head, out)
        if carry:
            out.append(_line(carry))
        return out


class _Run:
    """How pieces[start:end] encode after `carry` bytes (0 to 56) left over from before them.

    The bytes of a recipient (the carry, the header of their message's tokens) are put in by one
    %-formatting of a template holding every block they fall in, and those blocks encoded in
    one call; the other blocks were encoded when the run was worked out.
    """

    def __init__(self, pieces: list[bytes | Slot], merges: list[Slot | None], start: int, carry: int) -> None:
        block = Base64Part.BLOCK
        stream = bytearray()
        mine = bytearray()  # 1 where a byte is the recipient's
        spots: list[tuple[int, int, int]] = []  # (position, length, argument: 0 the carry, 1 the token header)

        def literal(data: bytes) -> None:
            stream.extend(data)
            mine.extend(bytes(len(data)))

        def theirs(length: int, argument: int) -> None:
            spots.append((len(stream), length, argument))
            stream.extend(bytes(length))
            mine.extend(b"\x01" * length)

        if carry:
            theirs(carry, 0)
        index = start
        while index < len(pieces) and merges[index] is None:
            piece = pieces[index]
            if isinstance(piece, TokenSlot):
                literal(piece.before.encode("utf-8"))
                theirs(HEAD, 1)
                literal(piece.after.encode("utf-8"))
            else:
                assert isinstance(piece, bytes)
                literal(piece)
            index += 1
        self.end = index
        whole = len(stream) // block
        personal = [any(mine[b * block:(b + 1) * block]) for b in range(whole + 1)]
        ranges = [(b * block, min((b + 1) * block, len(stream))) for b in range(whole + 1) if personal[b]]
        template = bytearray()
        order: list[int] = []
        for low, high in ranges:
            position = low
            while position < high:
                spot = next((s for s in spots if s[0] <= position < s[0] + s[1]), None)
                if spot is None:
                    following = min([s[0] for s in spots if s[0] > position] + [high])
                    template += bytes(stream[position:following]).replace(b"%", b"%%")
                    position = following
                else:
                    if spot[0] == position:
                        template += b"%s"
                        order.append(spot[2])
                    position = min(spot[0] + spot[1], high)
        self.template = bytes(template)
        self.order = tuple(order)
        self.personal = 57 * sum(personal[:whole])  # bytes of whole blocks the template makes
        # The lines in order: before each of the recipient's lines the static ones since the last
        # (b"" if none), then that line, then CRLF; the static rest at the end. The recipient's lines
        # are every third item, so one slice assignment puts them all in place.
        self.items: list[bytes] = []
        holes = 0
        static = bytearray()
        for b in range(whole):
            if not personal[b]:
                static += stream[b * block:(b + 1) * block]
                continue
            self.items += [b"".join(_lines(bytes(static))), b"", CRLF_BYTES]
            static = bytearray()
            holes += 1
        if static:
            self.items.append(b"".join(_lines(bytes(static))))
        self.holes = holes
        self.lines = operator.itemgetter(*[slice(76 * h, 76 * h + 76) for h in range(holes)]) if holes > 1 else None
        self.rest = None if personal[whole] else bytes(stream[whole * block:])
        self.static_rest = self.rest if self.rest is not None else b""
        # The usual run, untracked: only the seam after a merge value is the recipient's.
        self.seam = self.order == (0,)
        if self.seam:
            self.suffix = bytes(stream[carry:block] if holes else stream[carry:])
            self.after = self.items[3:]
        if len(self.order) > 1:
            self.pick: Callable[[tuple[bytes, bytes]], tuple[bytes, ...]] = operator.itemgetter(*self.order)
        else:
            only = self.order[0] if self.order else 0
            self.pick = lambda arguments: (arguments[only],)

    def fill(self, carry: bytes, head: bytes, out: list[bytes]) -> bytes:
        """Append the run's lines for one recipient (the carry, their token header) to `out`;
        returns the bytes left over."""
        raw = self.template % self.pick((carry, head))
        if self.holes:
            start = len(out)
            out += self.items
            encoded = binascii.b2a_base64(raw if self.rest is not None else raw[:self.personal], newline=False)
            if self.lines is not None:
                out[start + 1:start + 3 * self.holes:3] = self.lines(encoded)
            else:
                out[start + 1] = encoded
        else:
            out += self.items
        return raw[self.personal:] if self.rest is None else self.rest


CRLF_BYTES = b"\r\n"


def _lines(data: bytes) -> list[bytes]:
    return [_line(data[i:i + Base64Part.BLOCK]) for i in range(0, len(data), Base64Part.BLOCK)]


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

    def __init__(self, personaliser: Personaliser, send_id: int, tracking: TrackingPlan | None = None) -> None:
        workspace = personaliser.workspace
        sending = workspace.sending
        self.personaliser = personaliser
        self.slug = personaliser.slug
        self.send_id = send_id
        self.secret = personaliser.tokens.secret
        defaults = personaliser.defaults
        self.html = Base64Part(personaliser.html, True, defaults)
        self.text = Base64Part(personaliser.text, False, defaults)
        # A tracked send (never a test or a preview, whose send id is 0): its readers' copies are
        # built from parts with a slot for each message's tokens (engagement.links).
        self.tracking = tracking if tracking is not None and tracking.on and send_id else None
        if self.tracking is not None:
            html, text = personaliser.tracked(self.tracking.opens, self.tracking.clicks)
            self.tracked_html = Base64Part(html, True, defaults)
            self.tracked_text = Base64Part(text, False, defaults)
            self.codec = TrackingTokens(personaliser.tokens.secret)
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
        # [images] embed: the HTML and the images it shows by cid: travel as one multipart/related part.
        # Without any the message stays as above; with them, only the HTML's head and the tail change.
        inline = embedded(workspace, [p for p in personaliser.html.parts if isinstance(p, str)])
        if inline:
            related = f"=_related_{secrets.token_hex(12)}"
            self.html_head = (f"--{self.boundary}{CRLF}Content-Type: multipart/related; boundary=\"{related}\"; "
                              f"type=\"text/html\"{CRLF}{CRLF}--{related}{CRLF}Content-Type: text/html; "
                              f"charset=\"utf-8\"{CRLF}Content-Transfer-Encoding: base64{CRLF}{CRLF}").encode("ascii")
            parts = [(f"--{related}{CRLF}Content-Type: {media}{CRLF}Content-Transfer-Encoding: base64{CRLF}"
                      f"Content-ID: <{cid}>{CRLF}Content-Disposition: inline; filename=\"{name}\"{CRLF}{CRLF}"
                      ).encode("ascii") + b"".join(_line(data[i:i + 57]) for i in range(0, len(data), 57))
                     for cid, name, media, data in inline]
            self.tail = b"".join(parts) + f"--{related}--{CRLF}".encode("ascii") + self.tail
        self.mailto = workspace.unsubscribe_mailto
        self.dkim = (Dkim(sending.dkim_selector, self.domain, sending.dkim_key)
                     if sending.dkim_selector and sending.dkim_key else None)
        self._date = (0, "")

    def date(self, now: int | None = None) -> str:
        now = int(time.time()) if now is None else now
        if self._date[0] != now:  # formatting a date costs more than the rest of the headers
            # "+0000", not the obsolete "GMT" (RFC 5322 4.3), nor "-0000", which means "zone unknown".
            self._date = (now, format_datetime(datetime.fromtimestamp(now, UTC)))
        return self._date[1]

    def message_id(self, subscriber_id: int | None) -> str:
        return make_message_id(self.slug, self.send_id, subscriber_id or 0, self.domain, self.secret)

    def build(self, recipient: Recipient, message_id: str | None = None) -> tuple[str, bytes]:
        """The Message-ID and the complete message for one recipient."""
        values = self.personaliser.values(recipient)
        now = int(time.time())
        html, text, tokens = self.html, self.text, None
        if self.tracking is not None and self.tracking.tracks(recipient):
            assert recipient.subscriber_id is not None
            tokens = self.codec.message(self.send_id, recipient.subscriber_id, now)
            html, text = self.tracked_html, self.tracked_text
        elif self.send_id:
            values[NOTICE] = ""  # only a tracked copy says that it is
        subject = self.personaliser.subject.fill(values, html=False, defaults=self.personaliser.defaults)
        message_id = message_id or self.message_id(recipient.subscriber_id)
        unsubscribe = f"<{values['unsubscribe_url']}>"
        if self.mailto:
            token = str(values["unsubscribe_url"]).rsplit("/", 1)[-1]
            unsubscribe += f", <mailto:{self.mailto}?subject=unsubscribe%20{token}>"
        headers = CRLF.join([
            f"Date: {self.date(now)}",
            self.static_headers,
            f"To: {address(recipient.name, recipient.email)}",
            f"Subject: {header_text(subject)}",
            f"Message-ID: {message_id}",
            f"List-Unsubscribe: {unsubscribe}",
        ])
        # Base64 lines hold only [A-Za-z0-9+/=], so the boundary ("=_part_...") can never occur in them.
        message = b"".join([headers.encode("utf-8"), b"\r\n\r\n", self.text_head, *text.encode(values, tokens),
                            self.html_head, *html.encode(values, tokens), self.tail])
        if self.dkim is not None:
            message = self.dkim.sign(message) + message
        return message_id, message

