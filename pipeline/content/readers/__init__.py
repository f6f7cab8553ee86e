"""Readers turn an article file into the one content model, choosing by extension, then content."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from pipeline.content.models import Article
from pipeline.content.readers.common import decode, read_bytes
from pipeline.content.readers.html import read_html
from pipeline.content.readers.markdown import read_markdown
from pipeline.content.readers.text import read_text

EXTENSIONS = {
    ".md": "markdown", ".markdown": "markdown", ".mdown": "markdown", ".mkd": "markdown",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".txt": "text", ".text": "text",
}
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body|article|main)\b", re.I | re.S)
_MARKDOWN_HINTS = re.compile(r"^(---\s*$|#{1,6}\s+\S|\s*[-*+]\s+\S.*\n\s*[-*+]\s)|\[[^\]\n]+\]\([^)\s]+\)", re.M)


def detect_format(path: Path, data: bytes) -> str:
    """The format named by the extension; for any other file, the one its content shows."""
    known = EXTENSIONS.get(path.suffix.lower())
    if known:
        return known
    if _HTML_START.match(data[:2048].lstrip(b"\xef\xbb\xbf")):
        return "html"
    head = data[:4096].decode("utf-8", errors="ignore")
    return "markdown" if _MARKDOWN_HINTS.search(head) else "text"


def _from_text(reader: Callable[[str, str], Article]) -> Callable[[bytes, str], Article]:
    def read(data: bytes, source: str) -> Article:
        return reader(decode(data, Path(source)), source)

    return read


READERS: dict[str, Callable[[bytes, str], Article]] = {
    "markdown": _from_text(read_markdown),
    "html": read_html,
    "text": _from_text(read_text),
}


def read_article(path: Path, fmt: str | None = None) -> Article:
    """Read one article file into the content model; errors name the file."""
    data = read_bytes(path)
    return READERS[fmt or detect_format(path, data)](data, str(path))
