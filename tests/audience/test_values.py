"""What a subscriber's values may be (audience.values): field names from headers, cells as stored,
one-line text, tags, time zones, widths."""

from __future__ import annotations

import pytest

from pipeline.audience.values import (
    MAX_TEXT,
    canonical_timezone,
    clean_tag,
    clean_text,
    field_name,
    field_value,
    validate_field_name,
    width_problem,
)
from pipeline.errors import SubscriberError


@pytest.mark.parametrize(("header", "name"), [("Birth Year", "birth_year"), ("City", "city"),
                                             ("MEMBER_RATING", "member_rating"), ("2nd Phone", "f_2nd_phone"),
                                             ("  Ville préférée ", "ville_préférée")])
def test_field_names(header: str, name: str) -> None:
    assert field_name(header) == name


@pytest.mark.parametrize(("text", "value"), [("1975", 1975), ("-3", -3), ("4.5", 4.5), ("02134", "02134"),
                                           ("1e5", "1e5"), ("12345678901234567", "12345678901234567"),
                                           ("Oslo", "Oslo"), ("0", 0)])
def test_field_values_keep_codes_as_text(text: str, value: object) -> None:
    assert field_value(text) == value and type(field_value(text)) is type(value)


def test_text_is_one_line_without_control_characters() -> None:
    assert [clean_text(v) for v in ("  Ana\r\nLima\x00 ", "\t\n", None)] == ["Ana Lima", None, None]


def test_a_tag_is_short_and_has_no_comma() -> None:
    assert clean_tag("  back\npain ") == "back pain"
    for bad, message in (("", "a tag cannot be empty"),
                         ("a,b", "tag 'a,b' must be at most 100 characters, without commas")):
        with pytest.raises(SubscriberError) as caught:
            clean_tag(bad)
        assert str(caught.value) == message


def test_a_time_zone_is_known_by_any_case_and_given_its_iana_name() -> None:
    assert (canonical_timezone(" europe/OSLO "), canonical_timezone("Mars/Olympus")) == ("Europe/Oslo", None)


def test_a_custom_field_name_is_an_identifier_and_no_built_in() -> None:
    assert validate_field_name("birth_year") == "birth_year"
    for bad in ("2nd", "email", "with space"):
        with pytest.raises(SubscriberError, match="cannot be a custom field name"):
            validate_field_name(bad)


def test_text_wider_than_its_column_is_named_with_its_length() -> None:
    assert width_problem("first_name", "a" * MAX_TEXT) is None
    assert width_problem("first_name", "a" * 1234) == "first_name is 1,234 characters long (the limit is 200)"
