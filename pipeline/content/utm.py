"""UTM parameters on links to the practice's own site, so its analytics can tell newsletter visits."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_HREF = re.compile(r'href="(https?://[^"]+)"')
_TEXT_URL = re.compile(r"https?://[^\s<>\"()]+")


def _own(host: str, domains: Iterable[str]) -> bool:
    host = host.lower().split(":")[0]
    return any(host == d or host.endswith("." + d) for d in domains)


def add_utm(url: str, params: dict[str, str], domains: Iterable[str]) -> str:
    """The URL with params added, if it points at one of domains and does not set them already."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not _own(parts.netloc, domains):
        return url
    present = {k for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
    added = urlencode([(k, v) for k, v in params.items() if k not in present])
    if not added:
        return url
    # The query as written stays as written: re-encoding it would turn a merge tag (?e=*|EMAIL|*)
    # into %2A%7CEMAIL%7C%2A, which personalisation no longer sees.
    return urlunsplit(parts._replace(query=f"{parts.query}&{added}" if parts.query else added))


def utm_params(source: str, campaign: str) -> dict[str, str]:
    return {"utm_source": source, "utm_medium": "email", "utm_campaign": campaign}


def tag_html(document: str, params: dict[str, str], domains: Iterable[str]) -> str:
    domains = tuple(domains)

    def replace(match: re.Match[str]) -> str:
        url = html.unescape(match.group(1))
        return f'href="{html.escape(add_utm(url, params, domains), quote=True)}"'

    return _HREF.sub(replace, document)


def tag_text(text: str, params: dict[str, str], domains: Iterable[str]) -> str:
    domains = tuple(domains)
    def replace(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(".,;:!?")  # a full stop after a link ends the sentence, not the URL
        return add_utm(url, params, domains) + match.group(0)[len(url):]

    return _TEXT_URL.sub(replace, text)
