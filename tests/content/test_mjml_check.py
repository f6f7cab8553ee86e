from __future__ import annotations

import pytest

from pipeline.content.mjml_check import check_mjml


def wrap(body: str) -> str:
    return f"<mjml><mj-body><mj-section><mj-column>{body}</mj-column></mj-section></mj-body></mjml>"


def messages(source: str) -> list[str]:
    return [str(p) for p in check_mjml(source)]


def test_valid_document_has_no_problems() -> None:
    source = ("<mjml><mj-head><mj-attributes><mj-text color=\"red\" /><mj-class name=\"x\" /></mj-attributes>"
              "<mj-style>a > b { color: red }</mj-style></mj-head>"
              + wrap('<mj-text>Hi <b>there</b> &amp; you<br></mj-text><mj-image src="x" alt="y" />'
                     '<mj-button href="https://x.example">Go</mj-button>')[6:])
    assert messages(source) == []


@pytest.mark.parametrize(("body", "expected"), [
    ("<mj-txt>x</mj-txt>", ["line 1, column 39: unknown tag <mj-txt>",
                            "line 1, column 47: text 'x' is outside <mj-text> and would be dropped"]),
    ("<mj-text>x</mj-tex>", ["line 1, column 49: </mj-tex> found where </mj-text> was expected"]),
    ("<mj-text><mj-image src='x' /></mj-text>",
     ["line 1, column 48: <mj-image> cannot be inside <mj-text>, whose content is HTML"]),
    ("<mj-section></mj-section>",
     ["line 1, column 39: <mj-section> cannot be inside <mj-column> (allowed there: <mj-accordion>, "
      "<mj-button>, <mj-carousel>, <mj-divider>, <mj-image>, <mj-include>, <mj-navbar>, <mj-raw>, "
      "<mj-social>, <mj-spacer>, <mj-table>, <mj-text>)"]),
    ("<p>loose</p>", ["line 1, column 39: HTML tag <p> must be inside <mj-text> or <mj-raw>",
                      "line 1, column 42: text 'loose' is outside <mj-text> and would be dropped"]),
    ("<mj-text>1 < 2</mj-text>", ["line 1, column 50: a bare '<' must be written '&lt;'"]),
])
def test_problems(body: str, expected: list[str]) -> None:
    assert messages(wrap(body)) == expected


def test_unclosed_tags_and_missing_root() -> None:
    assert messages("<mj-body>\n<mj-section>") == [
        "line 1, column 1: the document must start with <mjml>",
        "line 1, column 1: <mj-body> must be inside <mjml>",
        "line 2, column 1: <mj-section> is never closed",
        "line 1, column 1: <mj-body> is never closed",
    ]
