"""What every reader shares: decoding a file safely, cleaning text, finding links in prose."""

from __future__ import annotations

import codecs
import re
from datetime import date, datetime
from pathlib import Path

from pipeline.content.models import Inline, Span
from pipeline.errors import ArticleError

# C0 controls other than tab and newline break XML, MJML and mail headers; nobody means them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_URL = re.compile(r"https?://[^\s<>\"]+|mailto:[^\s<>\"]+|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_TRAILING_PUNCT = ".,;:!?'\"’”»"


def read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArticleError("no such file", where=path) from None
    except IsADirectoryError:
        raise ArticleError("is a directory, not an article file", where=path) from None
    except OSError as exc:
        raise ArticleError(f"cannot be read ({exc.strerror})", where=path) from None
    if not data.strip():
        raise ArticleError("is empty", where=path)
    if b"\x00" in data[:8192] and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ArticleError("is a binary file, not a Markdown, HTML or text article", where=path)
    return data


def decode(data: bytes, path: Path, declared: str | None = None) -> str:
    """Decode UTF-8 (with or without BOM), UTF-16 with a BOM, or an HTML page's declared charset."""
    if data.startswith(codecs.BOM_UTF8):
        encoding, data = "utf-8", data[len(codecs.BOM_UTF8):]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = declared or "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        bad = data[exc.start:exc.start + 1].hex()
        line = data[:exc.start].count(b"\n") + 1
        raise ArticleError(
            f"is not valid {encoding} text (byte 0x{bad} on line {line}, offset {exc.start}); save it as UTF-8",
            where=path,
        ) from None
    if not text.strip():
        raise ArticleError("is empty", where=path)
    return text


def clean(text: str) -> str:
    """Drop control characters and normalise line ends; every printable character is kept."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def squash(text: str) -> str:
    """Collapse runs of whitespace (as HTML and soft line breaks do) and trim."""
    return " ".join(text.split())


def linkify(text: str) -> Inline:
    """Split prose into spans, turning bare URLs and e-mail addresses into links."""
    spans: list[Span] = []
    pos = 0
    for match in _URL.finditer(text):
        url = match.group(0)
        end = match.end()
        while url and url[-1] in _TRAILING_PUNCT or (url.endswith(")") and url.count("(") < url.count(")")):
            url, end = url[:-1], end - 1
        if not url:
            continue
        if match.start() > pos:
            spans.append(Span(text[pos:match.start()]))
        href = url if url.startswith(("http://", "https://", "mailto:")) else f"mailto:{url}"
        spans.append(Span(url, href=href))
        pos = end
    if pos < len(text):
        spans.append(Span(text[pos:]))
    return tuple(spans)


_ABBREVIATIONS = {"dr", "mr", "mrs", "ms", "st", "prof", "e.g", "i.e", "vs", "etc", "approx", "no"}
_SENTENCE_END = re.compile(r"[.!?…]+[\"'’”)]*(?=\s|$)")


def first_sentence(text: str) -> str:
    """The first sentence of a paragraph, not fooled by "Dr." or "e.g."."""
    text = squash(text)
    for match in _SENTENCE_END.finditer(text):
        words = text[:match.start()].split()
        last = words[-1].lower().rstrip(".") if words else ""
        if match.group(0).startswith(".") and last in _ABBREVIATIONS:
            continue
        return text[:match.end()]
    return text


def parse_date(value: object, where: str) -> date | None:
    """A date from front matter or a page's metadata; wrong values name their field."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        pass
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise ArticleError(f"{text!r} is not a date like 2026-03-14", where=where) from None
