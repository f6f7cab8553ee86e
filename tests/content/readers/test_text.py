from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipeline.content.models import (
    Article,
    Heading,
    ListBlock,
    ListItem,
    Paragraph,
    Removed,
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
                ListBlock((
                    ListItem((Span("Keep the same wake-up time, even at weekends"),)),
                    # "◦" indented under "•": a list inside the item, as on the page it came from
                    ListItem((Span("Dim the lights an hour before bed"),),
                             ListBlock(items("Swap the ceiling light for a lamp"))),
                    ListItem((Span("Leave your phone outside the bedroom"),)),
                )),
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


@pytest.mark.parametrize("line", [
    "March 14, 2025", "14 March 2025", "2025-03-14", "Mar 14, 2025", "Mar. 14, 2025", "Friday, March 14, 2025",
    "Fri 14 Mar 2025", "14th March 2025", "March 14th, 2025", "14/03/2025", "03/14/2025", "14.03.2025",
    "Posted on March 14, 2025", "Published: 14 March 2025", "March 14, 2025 · 4 min read",
])
def test_a_date_line_under_the_title_is_the_date_and_the_lead_stays_the_lead(line: str) -> None:
    article = read_text(f"Title\nBy Ana Lima\n{line}\n\nThe lead paragraph.\n\nA heading\nText.\n", "t.txt")
    assert (article.author, article.date) == ("Ana Lima", date(2025, 3, 14))
    assert article.lead == (Span("The lead paragraph."),)
    assert [s.heading for s in article.sections] == [Heading("A heading")]
    assert article.removed == ()


def test_byline_and_date_in_either_order_or_on_one_line() -> None:
    for head in ("March 14, 2025\nBy Ana Lima", "By Ana Lima | March 14, 2025", "Posted on 14 March 2025 by Ana Lima"):
        article = read_text(f"Title\n{head}\nLead.\nMore text.\n", "t.txt")
        assert (article.author, article.date, article.lead) == ("Ana Lima", date(2025, 3, 14), (Span("Lead."),))


def test_a_date_that_reads_two_ways_is_not_guessed_but_not_a_heading_either() -> None:
    article = read_text("Title\n04/03/2025\n\nThe lead.\n\nA heading\nText.\n", "t.txt")
    assert article.date is None and article.lead == (Span("The lead."),)
    assert article.removed == (Removed(2, "04/03/2025", "date"),)


def test_dates_further_down_are_the_article_s_own_text() -> None:
    article = read_text("Title\nLead.\n\nMarch 14, 2025\nWe opened the new room that day.\n", "t.txt")
    assert article.date is None
    assert article.sections[0].heading == Heading("March 14, 2025")


def test_website_lines_at_the_end_are_dropped_and_reported_with_their_lines() -> None:
    path = ARTICLES / "pasted-back-pain.txt"
    article = read_article(path)
    assert article.removed == (
        Removed(23, "Share this article: Facebook Twitter Email"),
        Removed(24, "Tags: back pain, research"),
        Removed(25, "Follow us on Instagram"),
    )
    last = article.sections[-1].blocks[-1]
    assert last == Paragraph((Span("Call us on 541-555-0187 to ask whether acupuncture could help your back."),))
    assert last.line == 21


@pytest.mark.parametrize("tail", [
    "Share this:\nFacebook\nX\nEmail", "Categories: Pain relief, Research", "Tagged: sleep",
    "Share on Facebook | Share on X", "Follow us on Facebook and Instagram for weekly tips", "Leave a comment",
])
def test_more_website_endings(tail: str) -> None:
    article = read_text(f"Title\nLead.\n\nThe last words of the article.\n\n{tail}\n", "t.txt")
    assert article.sections[-1].blocks[-1] == Paragraph((Span("The last words of the article."),))
    assert [r.text for r in article.removed] == tail.split("\n")


@pytest.mark.parametrize("tail", ["Share your story with us at the front desk.", "Tags help us sort your notes",
                                  "Follow the plan for two weeks."])
def test_closing_lines_that_are_the_article_s_own_stay(tail: str) -> None:
    article = read_text(f"Title\nLead.\n\nMore.\n\n{tail}\n", "t.txt")
    assert article.removed == ()
    assert article.sections[-1].blocks[-1] == Paragraph((Span(tail),))


def test_category_line_under_the_byline_is_dropped_too() -> None:
    article = read_text("Title\nBy Ana Lima\nCategory: Pain relief\nLead.\nMore.\n", "t.txt")
    assert article.lead == (Span("Lead."),)
    assert article.removed == (Removed(3, "Category: Pain relief"),)


def test_indented_sub_bullets_nest_inside_their_item() -> None:
    article = read_article(ARTICLES / "pasted-back-pain.txt")
    block = article.sections[1].blocks[1]
    assert block == ListBlock((
        ListItem((Span("Six to eight sessions, usually once a week"),)),
        ListItem((Span("Fine, single-use needles"),), ListBlock(items(
            "left in place for around twenty minutes", "removed gently, with no bleeding for most people"))),
        ListItem((Span("Simple movements to practise at home"),)),
    ))
    assert [i.line for i in block.items] == [12, 13, 16]
    assert [i.line for i in block.items[1].children.items] == [14, 15]


def test_three_levels_numbers_under_bullets_and_back_out() -> None:
    text = ("Title\nLead.\n"
            "- one\n  - one a\n      ▪ one a i\n  - one b\n    1. step\n    2. step two\n- two\n")
    [block] = read_text(text, "t.txt").sections[0].blocks
    assert block == ListBlock((
        ListItem((Span("one"),), ListBlock((
            ListItem((Span("one a"),), ListBlock(items("one a i"))),
            ListItem((Span("one b"),), ListBlock(items("step", "step two"), ordered=True)),
        ))),
        ListItem((Span("two"),)),
    ))


def test_blocks_know_their_lines() -> None:
    article = read_text("Title\n\nLead line.\n\nHeading\nText\nwrapped on.\n- a\n- b\n", "t.txt")
    assert (article.title_line, article.lead_line) == (1, 3)
    section = article.sections[0]
    assert section.heading.line == 5
    assert [b.line for b in section.blocks] == [6, 8]
