from __future__ import annotations

from datetime import date
from pathlib import Path

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
    plain,
)
from pipeline.content.readers import read_article
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
