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
    RefusedLink,
    Section,
    Span,
    plain,
)
from pipeline.content.readers import read_article
from pipeline.content.readers.html import read_html
from tests.conftest import ARTICLES

SITE = "https://willowcreek-acupuncture.example"


def test_blog_page_keeps_the_article_and_drops_the_page_around_it() -> None:
    path = ARTICLES / "acupressure.html"
    assert read_article(path) == Article(
        title="Three acupressure points for stressful days",
        lead=(Span("You can’t always get to the clinic when stress builds up. These three points are easy to "
                   "find and safe for most people to press at home."),),
        author="Dr. Mei Lin",
        date=date(2026, 4, 2),
        canonical_url=f"{SITE}/blog/acupressure-stress",
        hero_image=Image(f"{SITE}/images/acupressure.jpg", "A hand pressing the web between thumb and finger"),
        sections=(
            Section(Heading("How to press a point"), (
                Paragraph((Span("Use the pad of your thumb and press firmly but gently for about one minute, "
                                "breathing slowly. See our "),
                           Span("breathing guide", href=f"{SITE}/blog/breathing"),
                           Span(" for a simple rhythm."))),
            )),
            Section(Heading("The three points"), (
                ListBlock((
                    ListItem((Span("Hé Gǔ (LI4)", bold=True), Span(", in the web between thumb and index finger"))),
                    ListItem((Span("Nèi Guān (PC6)", bold=True),
                              Span(", three finger-widths above the inner wrist crease"))),
                    ListItem((Span("Tài Chōng (LR3)", bold=True),
                              Span(", on the top of the foot between the big and second toe"))),
                ), ordered=True),
                Image(f"{SITE}/images/pc6.jpg", "Finding the PC6 point above the wrist"),
            )),
            Section(Heading("Who should not press LI4?"), (
                Paragraph((Span("Please avoid LI4 if you are pregnant; it is traditionally used to encourage "
                                "labour."),)),
                Quote((Span("Acupressure is a helper, not a replacement for care from your doctor."),)),
                ListBlock((
                    ListItem((Span("Stop if a point feels sharp or painful"),)),
                    ListItem((Span("Don’t press on broken skin or bruises"),)),
                )),
                Paragraph((Span("Questions? "),
                           Span("Write to our front desk", href="mailto:frontdesk@willowcreek-acupuncture.example"),
                           Span("."))),
            )),
        ),
        source=str(path),
    )


def test_wordpress_page_keeps_figure_captions_and_finds_the_byline() -> None:
    article = read_article(ARTICLES / "tea.html")
    assert (article.title, article.author, article.date) == (
        "Herbal teas that support digestion", "Anna Kowalski", date(2026, 2, 10))
    assert [s.heading for s in article.sections] == [Heading("Peppermint", 3), Heading("Chamomile", 3),
                                                      Heading("Fennel", 3)]
    assert article.sections[0].blocks[1] == Image(f"{SITE}/images/peppermint.jpg", "Fresh peppermint leaves",
                                                  "Fresh peppermint leaves")
    everything = " ".join(plain(b.spans) for b in article.blocks() if hasattr(b, "spans"))
    assert "Share this" not in everything and "Twitter" not in everything and "WordPress" not in everything


def test_declared_legacy_charset_and_escaped_characters(tmp_path: Path) -> None:
    article = read_article(ARTICLES / "posture.html")
    assert article.lead == (Span("A good chair is a start, but how you sit matters more. Keep your screen at "
                                 "eye level & your feet flat."),)
    assert article.sections == (Section(Heading("Quick checks"), (
        Paragraph((Span("Is your screen closer than 50 cm? If the distance is < 50 cm, push it back. Our "
                        "café-style stools are not for long sessions."),)),
        ListBlock((ListItem((Span("Elbows at 90°"),)), ListItem((Span("Shoulders relaxed – not hunched"),)))),
    )),)


def test_an_html_file_with_another_extension_is_read_as_html(tmp_path: Path) -> None:
    path = tmp_path / "saved-page"
    path.write_bytes((ARTICLES / "acupressure.html").read_bytes())
    assert read_article(path).title == "Three acupressure points for stressful days"


PAGES = ARTICLES.parent / "pages"


def page(body: str, head: str = "<title>Dry needling explained | Clinic</title>") -> bytes:
    return f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'>{head}</head>\n<body>\n{body}\n</body></html>".encode()


def test_article_inside_theme_classes_that_look_like_furniture_is_read(tmp_path: Path) -> None:
    # Theme wrappers named "has-sidebar", "social-share-enabled", "elementor-widget" once made the
    # reader throw the whole article away as page furniture: "has no article text".
    paragraphs = "\n".join(
        f'<div class="elementor-widget elementor-widget-text-editor"><div class="elementor-widget-container">'
        f"<p>Paragraph {n} of the article explains one more thing about dry needling and how it differs "
        f"from acupuncture, in plain words for patients.</p></div></div>" for n in range(1, 7))
    path = tmp_path / "post.html"
    path.write_bytes(page(
        '<nav class="menu"><a href="/">Home</a> <a href="/blog">Blog</a></nav>'
        '<div class="content-wrap has-sidebar"><article class="post category-news tag-share">'
        '<h1>Dry needling explained</h1><div class="entry-content single-content social-share-enabled">'
        f"{paragraphs}</div></article>"
        '<aside class="sidebar"><h3>Popular posts</h3><ul><li><a href="/a">Another post</a></li></ul></aside></div>'))
    article = read_article(path)
    assert article.title == "Dry needling explained"
    text = article.plain_text()
    assert all(f"Paragraph {n} of the article" in text for n in range(1, 7))
    assert "Popular posts" not in text and "Another post" not in text


@pytest.mark.parametrize("name", sorted(p.name for p in PAGES.glob("*.html")))
def test_never_no_article_text_where_trafilatura_finds_text(name: str) -> None:
    import trafilatura

    data = (PAGES / name).read_bytes()
    assert trafilatura.extract(data)
    article = read_article(PAGES / name)
    assert len(article.plain_text()) > 500


def test_scripted_links_on_a_page_keep_their_text_and_are_reported() -> None:
    article = read_article(PAGES / "physio-knee-tables.html")
    assert "Print this page" not in article.plain_text()  # a row of links, not the article
    data = page('<article><h1>Dry needling explained</h1>\n<p>Fine needles release tight muscle bands, '
                'and most patients feel a brief twitch. To keep a copy,\n'
                '<a href="javascript:window.print()">print this page</a> or '
                '<a href="https://clinic.example/book">book a visit</a>.</p>\n'
                '<p>Sessions last thirty minutes and you can go back to work straight after.</p></article>')
    article = read_html(data, "p.html")
    assert article.lead[-4:] == (Span("print this page"), Span(" or "),
                                 Span("book a visit", href="https://clinic.example/book"), Span("."))
    # the paragraph's line: lint finds the link's own line in the file
    assert article.refused_links == (RefusedLink(5, "javascript:window.print()", "print this page"),)


def test_a_layout_table_s_menu_and_footer_go_and_its_list_comes_back() -> None:
    article = read_article(PAGES / "physio-knee-tables.html")
    text = article.plain_text()
    assert "About the practice" not in text and "4 Quay Street" not in text
    exercises = article.sections[1].blocks[1]
    assert isinstance(exercises, ListBlock) and exercises.ordered and len(exercises.items) == 3
    assert plain(exercises.items[0].spans).startswith("Wall sit")
    assert [r.line for r in article.removed][:2] == [23, 24]  # the menu, named by its lines


def test_captions_of_wordpress_galleries_blogger_tables_and_jetpack_tiles() -> None:
    douro = read_article(PAGES / "travel-douro.html")
    captions = [b.caption for b in douro.blocks() if isinstance(b, Image)]
    assert captions[:5] == ["Seven in the morning, and the river is still hiding under the mist.",
                            "The pool at the quinta, with the river three hundred metres below.",
                            "Octopus in Pinhão", "A twenty-year tawny at sunset", "The tiled station at Pinhão"]
    assert douro.hero_image is None  # shown once, where the article has it, with its caption
    breathing = read_article(PAGES / "blogger-breathing.html")
    [image] = [b for b in breathing.blocks() if isinstance(b, Image)]
    assert image.caption == "A low light helps, but it is not required."
    assert breathing.plain_text().count("A low light helps") == 1  # not also as a paragraph
    linen = read_article(PAGES / "fashion-linen.html")
    assert [b.caption for b in linen.blocks() if isinstance(b, Image) and b.caption] == [
        "Tone on tone hides creases better than contrast does.", "Sleeves rolled twice, never neatly.",
        "A woven bag finishes it off."]


def test_see_also_pointers_and_bookmark_cards_are_removed_and_reported() -> None:
    news = read_article(PAGES / "news-clinic-hours.html")
    assert "Read also" not in news.plain_text()
    assert [(r.line, r.text) for r in news.removed] == [
        (54, "Read also: Health centre waiting times hit a five-year high")]
    ghost = read_article(PAGES / "ghost-warming-foods.html")
    assert "Cooling foods for a hot summer" not in ghost.plain_text()


def test_bold_lines_over_text_are_headings_and_lines_are_the_page_s() -> None:
    article = read_article(PAGES / "blogger-breathing.html")
    assert [s.heading.text for s in article.sections if s.heading] == [
        "Minute one: notice", "Minutes two and three: lengthen the out-breath", "Minutes four and five: let the count go"]
    lines = (PAGES / "blogger-breathing.html").read_text(encoding="utf-8").splitlines()
    for section in article.sections:
        if section.heading:
            assert section.heading.text in lines[section.heading.line - 1]


def test_title_without_the_site_name_and_a_byline_paragraph_as_the_byline() -> None:
    article = read_article(PAGES / "squarespace-hay-fever.html")
    assert article.title == "Getting ahead of hay fever"
    article = read_html(page('<main><h1>Dry needling explained</h1><p>By Ana Lima | March 14, 2025</p>'
                             '<p>Fine needles release tight muscle bands, and most patients feel a brief twitch '
                             'as the muscle lets go. It is not the same as acupuncture.</p><p>Sessions last '
                             'thirty minutes and you can go back to work straight after.</p></main>'), "p.html")
    assert (article.author, article.date) == ("Ana Lima", date(2025, 3, 14))
    assert plain(article.lead).startswith("Fine needles")
