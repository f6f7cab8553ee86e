"""The report page: pygal's SVG charts of known figures, inline, loading nothing, parsed strictly."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from pipeline.engagement.report_html import CLICKS, OPENS, render
from tests.engagement.report_page import assert_offline, charts, parse

BOOK = "https://clinic.example/book?utm_source=newsletter&utm_medium=email"
BLOG = "https://www.clinic.example/blog/" + "a-very-long-article-address-" * 3


def _rates(name: str, key: Any, sent: int, opened: int, clicked: int) -> dict[str, Any]:
    return {name: key, "sent": sent, "unique_opens": opened, "unique_clicks": clicked,
            "open_rate": round(opened / sent, 4), "click_rate": round(clicked / sent, 4)}


def _data(**changes: Any) -> dict[str, Any]:
    opens, clicks = [0] * 72, [0] * 72
    opens[0], opens[1], opens[30], clicks[0], clicks[71] = 40, 25, 3, 9, 1
    data: dict[str, Any] = {
        "campaign": "back-pain", "subject": "Back pain & you", "sent": 1200, "delivered": 1188, "opens": 400,
        "unique_opens": 300, "machine_opens": 40, "clicks": 120, "unique_clicks": 90, "machine_clicks": 4,
        "unsubscribes": 3, "bounces": 12, "complaints": 0, "open_rate": 0.2525, "click_rate": 0.0758,
        "unsubscribe_rate": 0.0025, "click_to_open_rate": 0.3,
        "links": [{"url": BOOK, "clicks": 102, "unique_clicks": 78}, {"url": BLOG, "clicks": 15, "unique_clicks": 10},
                  {"url": "https://clinic.example", "clicks": 0, "unique_clicks": 0}],
        "hours": {"opens": opens, "clicks": clicks},
        "timezones": [_rates("timezone", "Europe/London", 800, 200, 60), _rates("timezone", None, 400, 100, 30)],
        "segments": [_rates("segment", "back-pain", 600, 200, 60)],
        "ab": None, "sends": []}
    return data | changes


def test_each_chart_is_pygal_svg_of_the_figures_in_the_workspace_colours() -> None:
    page = parse(render(_data()))
    assert_offline(page)
    hours, links, segments, zones = charts(page)

    assert hours.label == "Opens and clicks per hour after sending"
    assert list(hours.series) == ["opens", "clicks"]
    assert hours.series["opens"] == {f"{h} h": {0: "40", 1: "25", 30: "3"}.get(h, "0") for h in range(72)}
    assert hours.series["clicks"] == {f"{h} h": {0: "9", 71: "1"}.get(h, "0") for h in range(72)}
    assert hours.colours == {"opens": OPENS, "clicks": CLICKS}

    assert links.series == {"clicks": {"clinic.example/book": "102", "clinic.example": "0",
                                       "clinic.example/blog/a-very-long-article-addre…": "15"}}
    assert links.colours == {"clicks": CLICKS}
    assert segments.label == "Rates by segment"
    assert segments.series == {"opened": {"back-pain": "33.3%"}, "clicked": {"back-pain": "10.0%"}}
    assert zones.series == {"opened": {"Europe/London": "25.0%", "unknown": "25.0%"},
                            "clicked": {"Europe/London": "7.5%", "unknown": "7.5%"}}
    assert zones.colours == {"opened": OPENS, "clicked": CLICKS}


def test_the_figures_are_beside_the_charts_as_text() -> None:
    page = parse(render(_data()))
    tables = [["".join(cell.itertext()) for cell in row] for table in page.iter("table") for row in table.iter("tr")]
    assert ["0–1 h", "40", "9"] in tables and ["71–72 h", "0", "1"] in tables
    assert ["2–3 h", "0", "0"] not in tables  # only the hours something happened in
    assert [BOOK, "102", "78"] in tables and [BLOG, "15", "10"] in tables
    assert ["unknown", "400", "25.0% (100)", "7.5% (30)"] in tables
    assert [h.text for h in page.iter("h2")] == ["Opens and clicks, first 72 hours after sending", "Top links",
                                                "Rates by segment", "Rates by time zone"]


def test_a_subject_test_is_charted_and_labels_are_text_not_markup() -> None:
    test = {"metric": "clicks", "wait_until": None, "winner": {"variant": "A", "subject": "Ease <b>back</b> pain"},
            "variants": [_rates("variant", "A", 120, 40, 12) | {"subject": "Ease <b>back</b> pain"},
                         _rates("variant", "B", 120, 30, 8) | {"subject": "Your back & you"}]}
    html = render(_data(ab=test, segments=[], timezones=[]))
    assert "<b>back" not in html
    page = parse(html)
    assert_offline(page)
    found = {chart.label: chart for chart in charts(page)}
    assert list(found) == ["Opens and clicks per hour after sending", "Clicks on the ten most clicked links",
                           "Rates by subject"]
    assert found["Rates by subject"].series == {
        "opened": {"A: Ease <b>back</b> pain": "33.3%", "B: Your back & you": "25.0%"},
        "clicked": {"A: Ease <b>back</b> pain": "10.0%", "B: Your back & you": "6.7%"}}


def test_a_campaign_nobody_read_has_one_chart_and_says_so() -> None:
    quiet = _data(hours={"opens": [0] * 72, "clicks": [0] * 72}, segments=[], timezones=[],
                  links=[{"url": BOOK, "clicks": 0, "unique_clicks": 0}])
    page = parse(render(quiet))
    assert_offline(page)
    (hours,) = charts(page)
    assert set(hours.series["opens"].values()) == set(hours.series["clicks"].values()) == {"0"}
    notes = [p.text for p in page.iter("p") if p.get("class") == "note"]
    assert "No reader opened or clicked in these hours." in notes and "No links were clicked." in notes


@pytest.mark.parametrize("fault", ["script", "external", "import"])
def test_the_offline_check_catches_what_would_load(fault: str) -> None:
    html = render(_data())
    broken = {"script": html.replace("</main>", "<script>1</script></main>"),
              "external": html.replace("</main>", '<img src="https://tracker.example/p.gif" alt=""></main>'),
              "import": html.replace("<style>", "<style>@import 'https://fonts.example/a.css';")}[fault]
    with pytest.raises(AssertionError):
        assert_offline(parse(broken))


def test_the_figures_alone_need_no_pygal() -> None:
    code = ("import sys; import pipeline.engagement.report, pipeline.engagement.report_html, pipeline.cli.report; "
            "print('pygal' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
