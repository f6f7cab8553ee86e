from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipeline.content.models import (
    Article,
    Heading,
    Image,
    ListBlock,
    ListItem,
    Paragraph,
    Quote,
    Section,
    Span,
)
from pipeline.content.readers import read_article
from pipeline.content.readers.markdown import read_markdown
from pipeline.errors import ArticleError
from tests.conftest import ARTICLES

SITE = "https://willowcreek-acupuncture.example"


def test_front_matter_nested_lists_quotes_images_and_links() -> None:
    path = ARTICLES / "hydration.md"
    assert read_article(path) == Article(
        title="How much water do you really need?",
        lead=(Span('The old "eight glasses a day" rule is a start, but your needs depend on you.'),),
        author="Dr. Mei Lin",
        date=date(2026, 6, 14),
        canonical_url=f"{SITE}/blog/hydration",
        hero_image=Image(f"{SITE}/images/water.jpg", "A glass of water with slices of lemon"),
        tags=("hydration", "summer"),
        sections=(
            Section(Heading("Signs you may need more water"), (
                Paragraph((Span("You may be running low if you notice:"),)),
                ListBlock((
                    ListItem((Span("Dark yellow urine"),)),
                    ListItem((Span("Headaches in the afternoon"),), ListBlock((
                        ListItem((Span("especially on hot days"),)),
                        ListItem((Span("or after exercise"),)),
                    ))),
                    ListItem((Span("Feeling tired for no clear reason"),)),
                )),
            )),
            Section(Heading("Easy ways to drink more"), (
                ListBlock((
                    ListItem((Span("Keep a bottle on your desk."),)),
                    ListItem((Span("Eat water-rich food such as "), Span("cucumber", bold=True), Span(" and "),
                              Span("watermelon", italic=True), Span("."))),
                ), ordered=True, start=3),
                Quote((Span("Thirst is a late signal. Sip through the day"), Span(" "),
                       Span("rather than waiting for it."))),
                Image(f"{SITE}/images/bottle.jpg", "A reusable water bottle on a desk"),
                Paragraph((Span("Read more in our "),
                           Span("hydration guide", href=f"{SITE}/guides/hydration"), Span("."))),
            )),
        ),
        source=str(path),
    )


def test_title_from_first_heading_hero_from_first_image_and_raw_html_kept() -> None:
    article = read_article(ARTICLES / "stretching.md")
    assert article.title == "Three stretches for desk workers"
    assert article.hero_image == Image(f"{SITE}/images/desk-stretch.jpg", "Woman stretching at her desk")
    assert article.lead == (Span("Sitting for hours tightens the hips, shoulders and neck."), Span("\n"),
                            Span("These three stretches take five minutes."))
    assert [s.heading.text for s in article.sections if s.heading] == [
        "1. The neck release", "2. The seated twist", "3. The hip opener"]
    assert article.sections[0].blocks[1] == Heading("Take care", 3)
    assert article.sections[1].blocks[1] == Paragraph((Span("Tip: breathe out as you turn, in as you return."),))
    assert article.sections[2].blocks[1] == Paragraph(
        (Span("Repeat each stretch twice on each side.", code=True),), preformatted=True)


def test_setext_headings_and_special_characters() -> None:
    article = read_article(ARTICLES / "cold-season.md")
    assert article.lead == (Span("A few habits can make winter colds shorter & milder."),)
    assert article.sections[0] == Section(Heading("Keep warm"), (
        Paragraph((Span("Cover your neck and upper back when the wind is cold. Blood pressure < 140 & a warm "
                        "scarf go well together."),)),))
    assert article.sections[1].blocks[0] == ListBlock((
        ListItem((Span("Soups and stews"),)),
        ListItem((Span("Cooked rather than raw vegetables"),)),
        ListItem((Span("Warming spices: cinnamon, ginger & clove"),)),
    ))


def test_bad_front_matter_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.md"
    path.write_text("---\ntitle: ok\nauthor: [unclosed\n---\n\nText.\n", encoding="utf-8")
    with pytest.raises(ArticleError, match=r"bad\.md: front matter line \d+ is not valid YAML"):
        read_article(path)


def test_bad_date_names_the_field() -> None:
    with pytest.raises(ArticleError, match=r"x\.md: front matter 'date': 'next tuesday' is not a date"):
        read_markdown("---\ntitle: T\ndate: next tuesday\n---\nText.\n", "x.md")


def test_no_title_anywhere_is_an_error() -> None:
    with pytest.raises(ArticleError, match=r"x\.md: has no title"):
        read_markdown("Just a paragraph.\n", "x.md")
