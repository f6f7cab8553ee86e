from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from pipeline.audience.addresses import (
    InvalidEmail,
    email_hash,
    email_key,
    normalize_email,
)

ADDRESSES = [
    "ana@example.com", "Ana.Lopez+news@Example.COM", "  spaced@example.com ", "a..b@example.com",
    ".lead@example.com", "trail.@example.com", "no-at-sign", "two@@example.com", "user@localhost",
    "user@-bad.example.com", "user@example", "x" * 64 + "@example.com", "x" * 65 + "@example.com",
    "josé@example.com", "user@bücher.example", '"quoted local"@example.com', "user@[192.168.0.1]",
    "o'brien@example.ie", "user@example.com.", "Eve\r\nBcc: x@example.com", "a@" + "b" * 250 + ".com",
    "user@sub." + "d" * 63 + ".example", "user@123.com", "user@example.c0m",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_same_answer_as_email_validator(address: str) -> None:
    try:
        expected: str | None = validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        expected = None
    if expected is None:
        with pytest.raises(InvalidEmail):
            normalize_email(address)
    else:
        assert normalize_email(address) == expected


def test_keys_ignore_case_and_hashes_hide_the_address() -> None:
    assert email_key("Ana@Example.com") == "ana@example.com"
    assert email_hash("ANA@example.com") == email_hash("ana@EXAMPLE.com")
    assert "ana" not in email_hash("ana@example.com") and len(email_hash("ana@example.com")) == 64
