"""`campaign archive --check`: the archive as a web host will serve it, checked before it replaces
the old one.

Every page parses as HTML without a single error (html5lib, the WHATWG parsing algorithm, with
its errors collected); every link, stylesheet and image on a page leads to a file in the folder
or is an absolute http(s) address (those under [archive] base_url must be files in the folder
too); the feed parses with feedparser without complaint and lists only pages that exist; the
sitemap is well-formed and lists only pages that exist.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree

_LINKED = {"a": "href", "link": "href", "img": "src", "script": "src", "source": "src", "iframe": "src",
           "video": "src", "audio": "src", "form": "action"}
_ELSEWHERE = ("mailto", "tel", "sms")
_SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


def _exists(folder: Path, relative: str) -> bool:
    path = folder / relative
    return path.is_file() or (path / "index.html").is_file()


def resolve(folder: Path, page: str, url: str, base: str) -> str | None:
    """What is wrong with one address on the page at `page` (a path in the folder); None if nothing."""
    url = url.strip()
    if not url or url.startswith("#"):
        return None if url else "an empty address"
    if url == base or url.startswith(base + "/"):
        target = unquote(urlsplit(url[len(base):]).path).lstrip("/")
        return None if _exists(folder, target) else f"{url} is not a file of the archive"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https") or url.startswith("//"):
        return None
    if scheme in _ELSEWHERE or (scheme == "data" and not url.lower().startswith("data:text/html")):
        return None
    if scheme:
        return f"{url} is neither in the archive nor an http(s) address"
    if url.startswith("/"):
        return f"{url} depends on where the archive is served; use a relative address"
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page), unquote(parts.path)))
    if target == ".." or target.startswith("../"):
        return f"{url} leads out of the archive"
    return None if _exists(folder, "" if target == "." else target) else f"{url} leads to no file"


def _pages(folder: Path, base: str) -> list[str]:
    import html5lib  # here: only the check needs it

    problems: list[str] = []
    for path in sorted(folder.rglob("*.html")):
        page = path.relative_to(folder).as_posix()
        parser = html5lib.HTMLParser(strict=False, namespaceHTMLElements=False)
        try:
            tree = parser.parse(path.read_bytes(), transport_encoding="utf-8")
        except UnicodeDecodeError:
            problems.append(f"{page}: not UTF-8")
            continue
        for (line, column), code, _ in parser.errors:
            problems.append(f"{page}:{line}:{column}: not valid HTML ({code})")
        for element in tree.iter():
            attribute = _LINKED.get(element.tag) if isinstance(element.tag, str) else None
            value = element.get(attribute) if attribute else None
            if value is not None:
                problem = resolve(folder, page, value, base)
                if problem:
                    problems.append(f"{page}: <{element.tag} {attribute}>: {problem}")
    return problems


def _feed(folder: Path, base: str) -> list[str]:
    import feedparser  # here: only the check needs it

    path = folder / "feed.xml"
    if not path.is_file():
        return ["feed.xml: missing"]
    parsed = feedparser.parse(path.read_bytes())
    if parsed.bozo:
        return [f"feed.xml: does not parse ({parsed.bozo_exception})"]
    problems = []
    for entry in parsed.entries:
        problem = resolve(folder, "feed.xml", entry.get("link", ""), base)
        if problem:
            problems.append(f"feed.xml: entry {entry.get('title', '')!r}: {problem}")
    return problems


def _sitemap(folder: Path, base: str) -> list[str]:
    path = folder / "sitemap.xml"
    try:
        root = ElementTree.fromstring(path.read_bytes())
    except FileNotFoundError:
        return ["sitemap.xml: missing"]
    except ElementTree.ParseError as exc:
        return [f"sitemap.xml: not well-formed XML ({exc})"]
    problems = []
    for loc in root.iter(f"{_SITEMAP}loc"):
        url = (loc.text or "").strip()
        problem = resolve(folder, "sitemap.xml", url, base) if url.startswith(base + "/") else \
            f"{url} is not under {base}/"
        if problem:
            problems.append(f"sitemap.xml: {problem}")
    return problems


def check_archive(folder: Path, base: str) -> list[str]:
    """Every problem of the archive in `folder` that is to be published at `base`, one line each."""
    return _pages(folder, base) + _feed(folder, base) + _sitemap(folder, base)
