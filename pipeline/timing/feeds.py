"""Where a recurring digest finds its articles: an RSS or Atom feed (a file or a URL), or a folder.

Every item gets a stable key (the feed entry's id or link, or the file's name) so a digest can
remember what it has sent, and a publication time to tell what is new.
"""

from __future__ import annotations

import calendar
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser

from pipeline.content.models import Article, Image, Paragraph, group_sections, plain
from pipeline.content.readers import EXTENSIONS, read_article
from pipeline.content.readers.common import squash
from pipeline.content.readers.html_blocks import fragment_blocks
from pipeline.errors import SourceError

FETCH_TIMEOUT = 30
USER_AGENT = "campaign-pipeline (+https://pypi.org/project/campaign-pipeline/)"


@dataclass(frozen=True)
class SourceItem:
    key: str
    published: datetime | None  # aware UTC
    article: Article


def _time(entry: Any, *names: str) -> datetime | None:
    for name in names:
        parsed = entry.get(name)
        if parsed:
            return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    return None


def _image(entry: Any, blocks: list[Any]) -> Image | None:
    title = squash(entry.get("title", ""))
    for media in entry.get("media_content", []) + entry.get("media_thumbnail", []):
        if media.get("url"):
            return Image(media["url"], title)
    for link in entry.get("links", []):
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/") and link.get("href"):
            return Image(link["href"], title)
    return next((b for b in blocks if isinstance(b, Image)), None)


def _entry_article(entry: Any, source: str, published: datetime | None) -> Article:
    html = ""
    if entry.get("content"):
        html = entry["content"][0].get("value", "")
    html = html or entry.get("summary", "")
    link = entry.get("link")
    blocks = fragment_blocks(html, link) if html else []
    lead = next((b.spans for b in blocks if isinstance(b, Paragraph) and plain(b.spans).strip()), ())
    return Article(
        title=squash(entry.get("title", "")) or (link or "Untitled"),
        lead=lead,
        author=entry.get("author"),
        date=published.date() if published else None,
        canonical_url=link,
        hero_image=_image(entry, blocks),
        sections=group_sections([b for b in blocks if not (isinstance(b, Paragraph) and b.spans == lead)]),
        source=source,
    )


def _fetch(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
            return response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SourceError(f"cannot fetch the feed: {exc}", where=url) from None


def read_feed(data: bytes, source: str) -> list[SourceItem]:
    parsed = feedparser.parse(data)
    if not parsed.entries and (parsed.bozo or not parsed.get("version")):
        reason = getattr(parsed.get("bozo_exception"), "getMessage", lambda: "no entries")()
        raise SourceError(f"is not an RSS or Atom feed ({reason})", where=source)
    items = []
    for entry in parsed.entries:
        key = entry.get("id") or entry.get("link") or entry.get("title")
        if not key:
            continue
        published = _time(entry, "published_parsed", "updated_parsed")
        items.append(SourceItem(str(key), published, _entry_article(entry, source, published)))
    return items


def read_folder(folder: Path) -> list[SourceItem]:
    """Every article file in a folder: published on its date, else when the file last changed."""
    items = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in EXTENSIONS or path.name.startswith("."):
            continue
        article = read_article(path)
        published = (datetime(article.date.year, article.date.month, article.date.day, tzinfo=UTC)
                     if article.date else datetime.fromtimestamp(path.stat().st_mtime, UTC))
        items.append(SourceItem(path.name, published, article))
    return items


def read_source(source: str, base: Path) -> list[SourceItem]:
    """The items of a feed URL, a feed file or a folder (paths relative to the campaign's folder)."""
    if source.startswith(("http://", "https://")):
        return read_feed(_fetch(source), source)
    path = Path(source) if Path(source).is_absolute() else base / source
    if path.is_dir():
        return read_folder(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SourceError("no such file or folder", where=path) from None
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", where=path) from None
    return read_feed(data, str(path))
