from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import SourceError
from pipeline.timing.feeds import read_source
from tests.conftest import ARTICLES

RSS = """<?xml version="1.0"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>Clinic</title>
<item><title>Tea &amp; digestion</title><link>https://clinic.example/tea</link><guid>tea-1</guid>
<pubDate>Tue, 10 Feb 2026 09:00:00 GMT</pubDate>
<description>&lt;p&gt;A warm cup &amp;lt;helps&amp;gt;.&lt;/p&gt;&lt;p&gt;More.&lt;/p&gt;</description>
<media:content url="https://clinic.example/tea.jpg" medium="image"/></item>
<item><title>No date</title><link>https://clinic.example/undated</link></item>
</channel></rss>"""


def test_rss_items_become_articles(tmp_path: Path) -> None:
    (tmp_path / "feed.xml").write_text(RSS, encoding="utf-8")
    first, second = read_source("feed.xml", tmp_path)
    assert (first.key, first.published) == ("tea-1", datetime(2026, 2, 10, 9, tzinfo=UTC))
    article = first.article
    assert (article.title, article.canonical_url, article.lead_text) == (
        "Tea & digestion", "https://clinic.example/tea", "A warm cup <helps>.")
    assert article.hero_image is not None and article.hero_image.src == "https://clinic.example/tea.jpg"
    assert (second.key, second.published) == ("https://clinic.example/undated", None)


def test_a_folder_of_articles(tmp_path: Path) -> None:
    for name in ("hydration.md", "sleep.txt"):
        (tmp_path / name).write_bytes((ARTICLES / name).read_bytes())
    os.utime(tmp_path / "sleep.txt", (1767225600, 1767225600))  # 2026-01-01
    (tmp_path / "notes.bin").write_bytes(b"\x00")
    items = read_source(str(tmp_path), Path("/"))
    assert [(i.key, i.published) for i in items] == [
        ("hydration.md", datetime(2026, 6, 14, tzinfo=UTC)), ("sleep.txt", datetime(2026, 1, 1, tzinfo=UTC))]


@pytest.mark.parametrize(("content", "message"), [
    (b"<html><body>not a feed</body></html>", "is not an RSS or Atom feed"),
    (b"\x89PNG\r\n", "is not an RSS or Atom feed"),
])
def test_bad_sources(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "feed.xml").write_bytes(content)
    with pytest.raises(SourceError, match=message):
        read_source("feed.xml", tmp_path)
    with pytest.raises(SourceError, match=r"missing\.xml: no such file or folder"):
        read_source("missing.xml", tmp_path)
