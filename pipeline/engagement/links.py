"""A send's links, numbered once, and its prepared parts with room for each message's tokens.

The links are found in the prepared HTML and text (UTM parameters already added), numbered in
order of first appearance, HTML first, one number per address: a link in both parts, or twice in
one, has one number. `campaign serve` works the same table out again from the send's frozen
content, so a token's number leads only to an address that was in that message.

Tracked parts keep every literal piece and merge tag, and put a TokenSlot where a link's address
(or the open pixel) goes: for each message, only its short token fills the slot. Never rewritten:
the unsubscribe and preferences links (merge tags), mailto and any other scheme, links to
`campaign serve` itself, and an address with a merge tag in it (it holds personal data, which the
redirect must not carry).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pipeline.content.merge import Prepared, Slot

TOKENS = "_tracking_tokens"  # where a message's token header travels among its merge values
NOTICE = "tracking_notice"  # the merge tag the footer states tracking with
_HREF = re.compile(r'(href=")(https?://[^"]*)"', re.IGNORECASE)
_TEXT_URL = re.compile(r"https?://[^\s<>\"()]+")
_BODY = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_OWN = ("/unsubscribe/", "/preferences/", "/c/", "/o/", "/subscribe", "/confirm/", "/view/")
PIXEL_STYLE = "display:block;width:1px;height:1px;border:0;margin:0;padding:0;overflow:hidden"


@dataclass(frozen=True)
class TokenSlot(Slot):
    """Where one link's token goes (0: the open pixel). In a tracked copy: `before`, the message's
    token header, then `after` (which starts with the link's code, the token's end); wherever a
    copy is filled without tokens, `plain` (the original)."""

    number: int = 0
    before: str = ""
    after: str = ""
    plain: str = ""

    def value(self, values: Mapping[str, object], html: bool, defaults: Mapping[str, str] | None) -> str:
        head = values.get(TOKENS)
        if not isinstance(head, bytes):
            return self.plain
        return self.before + head.decode("ascii") + self.after


def _ours(url: str, base: str) -> bool:
    """A link to `campaign serve` itself, or to the unsubscribe or preferences pages anywhere."""
    if url.startswith(base + "/") and url[len(base):].startswith(_OWN):
        return True
    path = urlsplit(url).path
    return "/unsubscribe/" in path or "/preferences/" in path


def _html_links(piece: str, base: str) -> list[tuple[int, int, str]]:
    """(start, end, address as written) of each trackable href in a literal piece of HTML."""
    found = []
    for match in _HREF.finditer(piece):
        url = html.unescape(match.group(2))
        if not _ours(url, base) and _clean(url):
            found.append((match.start(2), match.end(2), match.group(2)))
    return found


def _text_links(pieces: tuple[str | Slot, ...], index: int, base: str) -> list[tuple[int, int, str]]:
    piece = pieces[index]
    assert isinstance(piece, str)
    found = []
    for match in _TEXT_URL.finditer(piece):
        url = match.group(0).rstrip(".,;:!?")  # a full stop after a link ends the sentence, not the URL
        runs_on = match.end() == len(piece) and index + 1 < len(pieces) and len(url) == len(match.group(0))
        if runs_on or _ours(url, base) or not _clean(url):
            continue  # the address goes on into a merge value: it is personal
        found.append((match.start(), match.start() + len(url), url))
    return found


def _clean(url: str) -> bool:
    """An address the redirect may send a reader on to: no controls, no spaces, no merge tag."""
    return url.isprintable() and " " not in url and "*|" not in url


def numbering(html_part: Prepared, text_part: Prepared, base: str) -> tuple[str, ...]:
    """The send's link table: the address of links 1, 2, ... (index 0 holds link 1)."""
    table: dict[str, int] = {}
    for piece in html_part.parts:
        if isinstance(piece, str):
            for _, _, written in _html_links(piece, base):
                table.setdefault(html.unescape(written), len(table) + 1)
    for index, piece in enumerate(text_part.parts):
        if isinstance(piece, str):
            for _, _, url in _text_links(text_part.parts, index, base):
                table.setdefault(url, len(table) + 1)
    return tuple(table)


def _pixel(base: str, code: str) -> TokenSlot:
    return TokenSlot("", "", 0, f'<img src="{html.escape(base, quote=True)}/o/',
                     f'{code}" width="1" height="1" alt="" style="{PIXEL_STYLE}">', "")


def _split(piece: str, spots: list[tuple[int, int, str]], slot: Callable[[str], Slot]) -> list[str | Slot]:
    out: list[str | Slot] = []
    pos = 0
    for start, end, written in spots:
        out += [piece[pos:start], slot(written)]
        pos = end
    out.append(piece[pos:])
    return [p for p in out if p != ""]


def tracked(html_part: Prepared, text_part: Prepared, base: str, code: Callable[[int], str], *, opens: bool,
            clicks: bool) -> tuple[Prepared, Prepared]:
    """The HTML and text parts with a TokenSlot for each trackable link (with `clicks`) and, just
    inside <body>, the open pixel (with `opens`; first, so that it survives a clipped message).
    `code` gives a link number's code (engagement.tokens)."""
    numbers = {url: n for n, url in enumerate(numbering(html_part, text_part, base), start=1)}
    prefix = html.escape(base, quote=True) + "/c/"
    html_out: list[str | Slot] = []
    pixel_due = opens
    for piece in html_part.parts:
        if not isinstance(piece, str):
            html_out.append(piece)
            continue
        spots = _html_links(piece, base) if clicks else []
        parts = _split(piece, spots, lambda w: TokenSlot("", "", numbers[html.unescape(w)], prefix,
                                                         code(numbers[html.unescape(w)]), w))
        if pixel_due:
            for at, part in enumerate(parts):
                body = _BODY.search(part) if isinstance(part, str) else None
                if body is not None:
                    parts[at:at + 1] = [p for p in (part[:body.end()], _pixel(base, code(0)), part[body.end():])
                                         if p != ""]
                    pixel_due = False
                    break
        html_out += parts
    if pixel_due:
        html_out.append(_pixel(base, code(0)))  # a fragment without <body>: the pixel goes at the end
    text_out: list[str | Slot] = []
    for index, piece in enumerate(text_part.parts):
        if not isinstance(piece, str) or not clicks:
            text_out.append(piece)
            continue
        spots = _text_links(text_part.parts, index, base)
        text_out += _split(piece, spots, lambda u: TokenSlot("", "", numbers[u], base + "/c/", code(numbers[u]), u))
    return Prepared(tuple(html_out)), Prepared(tuple(text_out))


def bare(url: str) -> str:
    """The address without its utm_ parameters: what clicked("slug", "https://...") compares with."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.lower().startswith("utm_")]
    return urlunsplit(parts._replace(query=urlencode(query)))
