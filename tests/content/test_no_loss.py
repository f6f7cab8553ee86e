"""Every heading, paragraph and list item of a source article reaches the newsletter, in order.

The source's text units are found here independently of the readers: lines of a text file,
markdown-it's own HTML rendering of a Markdown file, and the known article element of each
saved page. What a reader leaves out on purpose (a "Share this" row under pasted text) must be
reported on the article, so lint can say so: nothing goes missing silently. A date line is the
article's date, shown in the byline.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import frontmatter
import lxml.html
import pytest
from markdown_it import MarkdownIt

from pipeline.content.build import build_campaign
from pipeline.content.readers import read_article
from pipeline.content.readers.lines import date_line
from pipeline.content.readers.text import _BULLET, _NUMBERED
from pipeline.content.render import long_date
from pipeline.settings.scaffold import new_campaign
from pipeline.settings.workspace import Workspace
from tests.conftest import ARTICLES

BLOCK_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "figcaption")
# markdown-it alone reads the stars of *|FNAME|* as emphasis; the reference rendering keeps them.
MERGE_TAG = re.compile(r"\*\|[A-Za-z_]\w*(?::[^|*\n]*)?\|\*")
# The article element of each saved page, and what inside it is page furniture.
HTML_ARTICLE = {
    "acupressure.html": ("//article", []),
    "tea.html": ('//div[@class="entry-content"]', ['.//div[@class="sharedaddy"]']),
    "posture.html": ("//body", ['.//div[@class="menu"]', './/div[@class="footer"]']),
}


def squash(text: str) -> str:
    return " ".join(text.split())


def _element_units(root: lxml.html.HtmlElement) -> list[str]:
    units = []
    for el in root.iter(*BLOCK_TAGS):
        own = copy.deepcopy(el)
        for nested in own.xpath(".//ul | .//ol | .//p"):
            nested.getparent().remove(nested)
        text = squash(own.text_content())
        if text:
            units.append(text)
    return units


def source_units(path: Path) -> list[str]:
    if path.suffix == ".txt":
        article = read_article(path)
        removed = {r.line for r in article.removed}
        units = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = _BULLET.match(line) or _NUMBERED.match(line)
            text = match.group("text") if match else line
            if number in removed:
                assert text.strip() in {r.text for r in article.removed}
            elif date_line(text) and article.date:
                units.append(long_date(article.date))
            elif text.strip():
                units.append(squash(text))
        return units
    if path.suffix == ".md":
        post = frontmatter.loads(path.read_text(encoding="utf-8"))
        tags: list[str] = []

        def hide(match: re.Match[str]) -> str:
            tags.append(match.group(0))
            return f"MERGETAG{len(tags) - 1}X"

        html = MarkdownIt("commonmark").render(MERGE_TAG.sub(hide, post.content))
        root = lxml.html.fragment_fromstring(html, create_parent="div")
        units = [u for u in [squash(str(post.get("title", "")))] if u] + _element_units(root)
        return [re.sub(r"MERGETAG(\d+)X", lambda m: tags[int(m.group(1))], u) for u in units]
    doc = lxml.html.document_fromstring(path.read_bytes())
    container, furniture = HTML_ARTICLE[path.name]
    root = doc.xpath(container)[0]
    for junk in furniture:
        for el in root.xpath(junk):
            el.getparent().remove(el)
    return _element_units(root)


def assert_in_order(units: list[str], output: str, part: str) -> None:
    flat = squash(output)
    pos = 0
    for unit in units:
        found = flat.find(unit, pos)
        assert found >= 0, f"{part}: {unit!r} missing after position {pos}"
        pos = found + len(unit)


@pytest.mark.parametrize("name", sorted(p.name for p in ARTICLES.iterdir()))
def test_every_text_unit_reaches_the_html_and_text_parts_in_order(workspace: Workspace, name: str) -> None:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    new_campaign(workspace, slug, [ARTICLES / name])
    rendered = build_campaign(workspace, slug).rendered
    units = source_units(ARTICLES / name)
    assert len(units) >= 6
    html_text = lxml.html.document_fromstring(rendered.html).body.text_content()
    assert_in_order(units, html_text, "email.html")
    # In the text part links are written out as "text (address)"; drop the addresses to compare.
    text = re.sub(r"\s\((?:https?://[^\s()]+|[^\s()@]+@[^\s()]+|\*\|\w+\|\*)\)", "", rendered.text)
    assert_in_order(units, text, "email.txt")
