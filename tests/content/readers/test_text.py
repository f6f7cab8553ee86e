from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.content.models import (
    Article,
    Heading,
    ListBlock,
    ListItem,
    Paragraph,
    Section,
    Span,
)
from pipeline.content.readers import read_article
from pipeline.content.readers.text import read_text
from pipeline.errors import ArticleError
from tests.conftest import ARTICLES


def items(*texts: str) -> tuple[ListItem, ...]:
    return tuple(ListItem((Span(t),)) for t in texts)


def test_sleep_article_keeps_typography_bullets_and_numbered_steps() -> None:
    path = ARTICLES / "sleep.txt"
    assert read_article(path) == Article(
        title="Five gentle habits for deeper sleep",
        lead=(Span("Good sleep is the quiet foundation of healing. In Chinese medicine we say the body "
                   "“returns its qì (气) to the organs” at night — here is how to help it along."),),
        sections=(
            Section(Heading("Why does sleep matter so much?"), (
                Paragraph((Span("When we sleep, muscles repair, hormones rebalance and the mind files away "
                                "the day’s worries. One short night is fine; weeks of them are not."),)),
            )),
            Section(Heading("Habits that help:"), (
                Paragraph((Span("Try adding one habit a week rather than all five at once."),)),
                ListBlock(items("Keep the same wake-up time, even at weekends",
                                "Dim the lights an hour before bed",
                                "Swap the ceiling light for a lamp",
                                "Leave your phone outside the bedroom")),
            )),
            Section(Heading("A simple evening routine"), (
                Paragraph((Span("Our patients like this three-step wind-down – it takes ten minutes."),)),
                ListBlock(items("Drink a small cup of warm water or caffeine-free tea",
                                "Press the point Shén Mén on each ear for one minute",
                                "Breathe slowly: in for four counts, out for six"), ordered=True),
            )),
            Section(Heading("When to ask for help"), (
                Paragraph((
                    Span("If you still lie awake for more than half an hour most nights, tell us at your "
                         "next visit, or write to "),
                    Span("sleep@willowcreek-acupuncture.example",
                         href="mailto:sleep@willowcreek-acupuncture.example"),
                    Span(" — Zoë on the front desk reads every message."),
                )),
            )),
        ),
        source=str(path),
    )


def test_ginger_article_byline_urls_and_mixed_bullets() -> None:
    path = ARTICLES / "ginger.txt"
    url = "https://www.nccih.nih.gov/health/ginger"
    assert read_article(path) == Article(
        title="Ginger: a warming kitchen remedy",
        author="Dr. Mei Lin",
        lead=(Span("Ginger has been used in Chinese kitchens and clinics for more than two thousand years, "
                   "and it still earns its place in the cupboard."),),
        sections=(
            Section(Heading("What is ginger good for?"), (
                Paragraph((Span("Research summarised by the NIH at "), Span(url, href=url),
                           Span(" suggests ginger can ease some kinds of nausea."))),
            )),
            Section(Heading("Three ways to use it"), (
                ListBlock(items("Slice fresh ginger into hot water for a simple tea.",
                                "Add grated ginger to soups in the colder months.",
                                "Keep crystallised ginger in your bag for travel sickness."), ordered=True),
            )),
            Section(Heading("Who should be careful?"), (
                Paragraph((Span("People who take blood thinners should talk to their doctor first, because "
                                "ginger may add to their effect."),)),
                ListBlock(items("Pregnant? Ask before taking ginger supplements.",
                                "Gallstones? Check with your doctor.",
                                "Children under two should not take ginger remedies.")),
                Paragraph((Span("Questions? Reply to this email (or call us on 503-555-0142)."),)),
            )),
        ),
        source=str(path),
    )


def test_migraine_article_joins_hard_wrapped_lines() -> None:
    path = ARTICLES / "migraine.txt"
    article = read_article(path)
    assert article.lead == (Span("Migraine is more than a bad headache. It is a neurological condition "
                                 "that affects about one in seven people, and it often runs in families."),)
    assert [s.heading.text for s in article.sections if s.heading] == [
        "Common triggers", "Things our patients often notice", "Acupuncture as prevention"]
    assert article.sections[1].blocks == (ListBlock(items("Skipped meals", "Too little sleep, or too much",
                                                          "Bright, flickering light")),)
    assert article.sections[2].blocks == (
        Paragraph((Span("Several reviews report that a course of acupuncture can reduce how often migraines "
                        "happen. It does not replace the medicines your doctor prescribes; it can sit "
                        "alongside them."),)),
        Paragraph((Span("See you soon"),)),
    )


@pytest.mark.parametrize("line", ["Symptoms to watch for:", "What we look for:"])
def test_a_line_ending_in_a_colon_before_a_list_opens_the_list(line: str) -> None:
    article = read_text(f"Title\n\nLead.\n\n{line}\n- one\n- two\n", "t.txt")
    assert article.sections[0].heading is None
    assert article.sections[0].blocks[0] == Paragraph((Span(line),))


def test_numbered_items_keep_their_first_number() -> None:
    article = read_text("Title\nLead.\n3) third\n4) fourth\n", "t.txt")
    assert article.sections[0].blocks == (ListBlock(items("third", "fourth"), ordered=True, start=3),)


def test_dashes_and_stars_without_a_space_are_prose() -> None:
    article = read_text("Title\nLead.\n-5 °C overnight, so dress warmly.\n*Really* warmly.\n", "t.txt")
    assert [b for s in article.sections for b in s.blocks] == [
        Paragraph((Span("-5 °C overnight, so dress warmly."),)),
        Paragraph((Span("*Really* warmly."),)),
    ]


def test_title_only_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("Just a title\n\n   \n", encoding="utf-8")
    with pytest.raises(ArticleError, match=r"t\.txt: has a title but no article text under it$"):
        read_article(path)
