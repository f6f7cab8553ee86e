"""What one cell of an import becomes (audience/importing/cells.py)."""

from __future__ import annotations

import pytest

from pipeline.audience.importing.cells import Reject, attributes_of, custom_json, stored_time, tags_of


@pytest.mark.parametrize(("text", "stored"), [
    ("2025-03-14 09:30:00", "2025-03-14 09:30:00.000000"),  # Mailchimp's: UTC already
    ("2025-03-14T09:30:00", "2025-03-14 09:30:00.000000"),
    ("2025-03-14 09:30:00.25", "2025-03-14 09:30:00.250000"),
    ("2025-03-14T09:30:00+02:00", "2025-03-14 07:30:00.000000"),
    ("2025-03-14 093000.5", "2025-03-14 09:30:00.500000"),  # as long as Mailchimp's, but ISO's basic time
    ("2025-03-14 09:30+01", "2025-03-14 08:30:00.000000"),  # as long too, but with an offset
])
def test_times_are_stored_as_utc_text(text: str, stored: str) -> None:
    assert stored_time(text) == stored


def test_what_is_not_a_time_raises_value_error() -> None:
    with pytest.raises(ValueError):
        stored_time("2025-13-14 09:30:00")


@pytest.mark.parametrize(("cell", "tags"), [
    ('"vip","sleep"', {"vip", "sleep"}),  # Mailchimp quotes each tag
    ("vip, sleep,", {"vip", "sleep"}),
    ('"back ""pain""", sleep', {'back "pain"', "sleep"}),
])
def test_tags_of_a_cell(cell: str, tags: set[str]) -> None:
    assert tags_of(cell) == frozenset(tags)


def test_a_tag_with_a_comma_in_it_turns_the_row_away() -> None:
    with pytest.raises(Reject, match="without commas"):
        tags_of('"a, b",c')


def test_custom_fields_as_the_stored_json_with_the_names_present() -> None:
    assert custom_json(("city", "rating", "note"), ("Portland", " 4 ", "")) == (
        '{"city": "Portland", "rating": 4}', ("city", "rating"))
    assert custom_json(("city",), ("",)) == ("{}", ())


def test_listmonk_attributes_keep_their_types_and_drop_empty_values() -> None:
    assert attributes_of('{"Plan": "gold", "visits": 3, "left": null, "x": ""}') == {"plan": "gold", "visits": 3}
    with pytest.raises(Reject, match="attributes is not a JSON object"):
        attributes_of("[1, 2]")
