from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipeline.audience.recipients import Recipient, sample_recipient
from pipeline.audience.tokens import Tokens
from pipeline.content.build import build_campaign
from pipeline.content.models import (
    Article,
    Heading,
    Image,
    ListBlock,
    ListItem,
    Paragraph,
    Quote,
    RefusedLink,
    Section,
    Span,
)
from pipeline.content.readers import read_article
from pipeline.content.readers.markdown import read_markdown
from pipeline.delivery.personalise import Personaliser
from pipeline.errors import ArticleError
from pipeline.settings.scaffold import new_campaign
from pipeline.settings.workspace import Workspace
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


def test_merge_tags_survive_in_paragraphs_headings_items_and_links() -> None:
    article = read_article(ARTICLES / "greeting.md")
    assert article.lead == (Span("Dear *|FNAME|*, the blossom is out and so are the pollen counts."),)
    section = article.sections[0]
    closing = section.blocks
    assert section.heading == Heading("Three things for *|first_name:you|* to try this month")
    assert closing[0] == ListBlock((
        ListItem((Span("Drink a cup of warm water before breakfast, *|FNAME|*"),)),
        ListItem((Span("Walk for *|first_name:twenty|* minutes", bold=True), Span(" after lunch"))),
        ListItem((Span("Tell us what you would like to read, *|FNAME|*", href="*|UPDATE_PROFILE|*"),)),
    ))
    assert closing[1] == Paragraph((Span("If you would rather not hear from us, "),
                                    Span("unsubscribe here", href="*|UNSUB|*"), Span(" at any time.")))


def test_a_tag_inside_emphasis_and_a_half_tag_are_kept_as_written() -> None:
    article = read_markdown("# T\n\n*Dear *|FNAME|*,* hello and *|FNAME* or FNAME|* here.\n", "x.md")
    assert article.lead == (Span("Dear *|FNAME|*,", italic=True), Span(" hello and *|FNAME* or FNAME|* here."))


def test_a_tag_in_an_address_with_a_space_in_its_fallback() -> None:
    article = read_markdown("# T\n\n[Your page](https://x.example/p?n=*|first_name:dear friend|*)\n", "x.md")
    assert article.lead == (Span("Your page", href="https://x.example/p?n=*|first_name:dear friend|*"),)


def test_merge_tags_reach_the_email_and_personalisation_fills_them(workspace: Workspace) -> None:
    new_campaign(workspace, "greeting", [ARTICLES / "greeting.md"])
    built = build_campaign(workspace, "greeting")
    html, text = built.rendered.html, built.rendered.text
    assert "Dear *|FNAME|*, the blossom is out" in html and "Dear *|FNAME|*, the blossom is out" in text
    assert "Three things for *|first_name:you|* to try this month</h2>" in html
    assert '<a href="*|UPDATE_PROFILE|*"' in html and "Walk for *|first_name:twenty|* minutes</strong>" in html
    sample = sample_recipient()
    copy = Personaliser(workspace, built.content, "greeting", Tokens("a test secret")).copy(
        Recipient(None, sample.email, None, {**sample.values, "first_name": "Zoë"}))
    assert "Dear Zoë, the blossom is out" in copy.html and "Dear Zoë, the blossom is out" in copy.text
    assert "Three things for Zoë to try this month" in copy.html
    assert "Tell us what you would like to read, Zoë" in copy.html
    assert 'href="https://willowcreek-acupuncture.example/email/preferences/sample"' in copy.html
    assert "*|" not in copy.html and "*|" not in copy.text
    nameless = Personaliser(workspace, built.content, "greeting", Tokens("a test secret")).copy(
        Recipient(None, "x@example.com", None, {"first_name": ""}))
    assert "Walk for twenty minutes" in nameless.text and "Three things for you to try" in nameless.text


@pytest.mark.parametrize(("link", "href"), [
    ("[the form](javascript:alert(1))", "javascript:alert(1)"),
    ("[the form](JavaScript:void(0))", "JavaScript:void(0)"),
    ("[the form](vbscript:msgbox)", "vbscript:msgbox"),
    ("[the form](data:text/html;base64,PHNjcmlwdD4=)", "data:text/html;base64,PHNjcmlwdD4="),
    ("[the form](file:///etc/passwd)", "file:///etc/passwd"),
])
def test_links_that_could_run_code_keep_their_text_only(link: str, href: str) -> None:
    article = read_markdown(f"---\ntitle: T\n---\nLead.\n\nFill in\n{link} today.\n", "x.md")
    assert article.sections[0].blocks == (Paragraph((Span("Fill in"), Span(" "), Span("the form"), Span(" today."))),)
    assert article.refused_links == (RefusedLink(7, href, "the form"),)


def test_refused_autolinks_raw_html_links_and_images_name_their_lines() -> None:
    text = ("# T\n\nLead.\n\nSee <javascript:alert(1)>.\n\n"
            '<p>Or <a href=" javascript:go()">this one</a>.</p>\n\n![x](javascript:alert(2))\n')
    article = read_markdown(text, "x.md")
    assert article.refused_links == (RefusedLink(5, "javascript:alert(1)", "javascript:alert(1)"),
                                     RefusedLink(7, "javascript:go()", "this one"),
                                     RefusedLink(9, "javascript:alert(2)", "x"))
    assert article.plain_text() == "T\nLead.\nSee javascript:alert(1).\nOr this one."


def test_blocks_know_their_lines_below_the_front_matter() -> None:
    article = read_article(ARTICLES / "hydration.md")
    assert article.title_line is not None
    lines = (ARTICLES / "hydration.md").read_text(encoding="utf-8").splitlines()
    for block in article.blocks():
        if isinstance(block, Heading):
            assert block.text in lines[block.line - 1]
    items = article.sections[0].blocks[1].items
    assert "Dark yellow urine" in lines[items[0].line - 1]
