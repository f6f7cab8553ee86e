from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.content.article_lint import REMOVED_SHOWN, article_findings
from pipeline.content.models import Article, Paragraph, Removed, Section, Span
from pipeline.content.readers import read_article
from tests.conftest import ARTICLES


def findings(tmp_path: Path, name: str, text: str, **kwargs: object) -> list[str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return [str(f) for f in article_findings(read_article(path), name, **kwargs)]  # type: ignore[arg-type]


MARKDOWN = """---
title: Spring notes
---

Dear *|FNAME|*, welcome back.

## For *|first_name:friend|*

- an item for *|LNAME|* and *|email|*
- [update your details](*|UPDATE_PROFILE|*) or [leave](*|UNSUB|*)

A paragraph that runs on
over a second line, then a third
one with *|FNAM|* in it.
"""


def test_an_unknown_merge_tag_names_the_article_s_file_and_line(tmp_path: Path) -> None:
    assert findings(tmp_path, "article.md", MARKDOWN) == [
        "error: article.md:14: unknown merge tag *|FNAM|*; did you mean *|FNAME|*? [merge-tag]"]


def test_built_in_fields_and_mailchimp_names_are_known(tmp_path: Path) -> None:
    text = ("# T\n\n*|FNAME|* *|LNAME|* *|EMAIL|* *|first_name:you|* *|last_name|* *|timezone|*\n\n"
            "[a](*|UNSUB|*) [b](*|UPDATE_PROFILE|*) [c](*|unsubscribe_url|*) [d](*|preferences_url|*)\n")
    assert findings(tmp_path, "a.md", text) == []


def test_custom_fields_when_known_and_when_not(tmp_path: Path) -> None:
    text = "# T\n\nSee you in *|city|*, *|FNAME|*.\n\nBorn in *|birth_year|*.\n"
    assert findings(tmp_path, "a.md", text, fields=["city", "birth_year"]) == []
    assert findings(tmp_path, "a.md", text, fields=["city"]) == [
        "error: a.md:5: unknown merge tag *|birth_year|* [merge-tag]"]
    assert findings(tmp_path, "a.md", text) == [  # the subscribers' fields unknown: only a warning
        ("warning: a.md:3: merge tag *|city|* names no built-in field; it stays empty for subscribers "
         "without a 'city' field [merge-field]"),
        ("warning: a.md:5: merge tag *|birth_year|* names no built-in field; it stays empty for subscribers "
         "without a 'birth_year' field [merge-field]"),
    ]


@pytest.mark.parametrize(("line", "fragment"), [
    ("Dear *|FNAME, welcome.", "*|FNAME,"),
    ("Dear FNAME|*, welcome.", "FNAME|*,"),
    ("Dear *| FNAME |*, welcome.", "*| FNAME |*"),
    ("Fine *|FNAME|* but *|LNAME* is not.", "*|LNAME*"),
])
def test_half_a_merge_tag_is_an_error_on_its_line(tmp_path: Path, line: str, fragment: str) -> None:
    assert findings(tmp_path, "a.md", f"# T\n\nLead.\n\n{line}\n") == [
        f"error: a.md:5: broken merge tag {fragment}; write *|field|* or *|field:fallback|* [merge-tag]"]


def test_merge_tags_in_text_and_html_articles_too(tmp_path: Path) -> None:
    assert findings(tmp_path, "a.txt", "Title\nLead for *|FNAME|*.\n\nHeading\nText for *|FRIST_NAME|*.\n") == [
        "error: a.txt:5: unknown merge tag *|FRIST_NAME|*; did you mean *|FIRST_NAME|*? [merge-tag]"]
    page = ("<html><head><title>T</title></head><body><article><h1>T</h1>\n"
            "<p>Dear *|FNAME|*, the clinic is open again after the holidays and we would love to see you.</p>\n"
            "<p>Book a visit, *|FANME|*, before the end of the month so we can keep your usual slot.</p>\n"
            "</article></body></html>")
    assert findings(tmp_path, "a.html", page) == [
        "error: a.html:3: unknown merge tag *|FANME|*; did you mean *|FNAME|*? [merge-tag]"]


@pytest.mark.parametrize(("link", "scheme"), [
    ("javascript:alert(1)", "javascript"), ("vbscript:msgbox", "vbscript"), ("data:text/html,hi", "data")])
def test_a_link_that_could_run_code_is_an_error_on_its_line(tmp_path: Path, link: str, scheme: str) -> None:
    text = f"---\ntitle: T\n---\n\nLead.\n\nFill in\n[the form]({link}) today.\n"
    assert findings(tmp_path, "article.md", text) == [
        (f"error: article.md:8: link to {link} is not allowed: {scheme}: addresses can run code and mail "
         f"programs block them ('the form' is kept as plain text) [unsafe-link]")]


def test_a_scripted_link_in_a_saved_page_names_the_link_s_own_line(tmp_path: Path) -> None:
    page = ("<html><head><title>T</title></head><body><article><h1>T</h1>\n"
            "<p>Fine needles release tight muscle bands, and most patients feel a brief twitch as it lets go.\n"
            "To keep a copy, <a href='javascript:window.print()'>print this page</a>.</p>\n"
            "<p>Sessions last thirty minutes and you can go back to work straight after the treatment.</p>\n"
            "</article></body></html>")
    [finding] = findings(tmp_path, "a.html", page)
    assert finding.startswith("error: a.html:3: link to javascript:window.print() is not allowed")


def test_an_article_built_by_hand_with_a_scripted_link_is_caught_too() -> None:
    article = Article("T", sections=(Section(None, (Paragraph((Span("x", href="javascript:go()"),), line=4),)),))
    assert [str(f) for f in article_findings(article, "digest")] == [
        "error: digest:4: link to javascript:go() is not allowed [unsafe-link]"]


def test_removed_website_lines_are_warnings_with_their_lines() -> None:
    article = read_article(ARTICLES / "pasted-back-pain.txt")
    assert [str(f) for f in article_findings(article, "article.txt")] == [
        ("warning: article.txt:23: removed website line 23: 'Share this article: Facebook Twitter Email' "
         "[removed-line]"),
        "warning: article.txt:24: removed website line 24: 'Tags: back pain, research' [removed-line]",
        "warning: article.txt:25: removed website line 25: 'Follow us on Instagram' [removed-line]",
    ]


def test_many_removed_lines_are_counted_after_the_first_few() -> None:
    article = Article("T", removed=tuple(Removed(n, f"Link {n}") for n in range(1, 10)))
    found = [str(f) for f in article_findings(article, "page.html")]
    assert len(found) == REMOVED_SHOWN + 1
    assert found[-1] == f"warning: page.html: removed {9 - REMOVED_SHOWN} more website lines [removed-line]"


def test_a_date_that_reads_two_ways_is_a_warning(tmp_path: Path) -> None:
    assert findings(tmp_path, "a.txt", "Title\n04/03/2025\nLead.\nMore.\n") == [
        ("warning: a.txt:2: '04/03/2025' reads as two different dates, so it is not used as the article's "
         "date; write it as 2025-03-14 or 14 March 2025 [ambiguous-date]")]


def test_clean_articles_have_no_findings() -> None:
    for name in ("hydration.md", "greeting.md", "sleep.txt", "acupressure.html"):
        assert article_findings(read_article(ARTICLES / name), name) == [], name
