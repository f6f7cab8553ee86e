"""Opening and decoding an import file (audience/importing/source.py)."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from pipeline.audience.importing.source import bad_line, decoded_lines


def test_lines_are_decoded_with_their_endings_and_without_the_bom(tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_bytes(codecs.BOM_UTF8 + b"email\r\nz\xc3\xbcrich@example.com\nlast")
    with source.open("rb") as raw:
        assert list(decoded_lines(raw)) == ["email\r\n", "zürich@example.com\n", "last"]


@pytest.mark.parametrize(("content", "line"), [
    (b"email\nana@example.com\nb\xe9n@example.com\n", 3),
    (b"\xff\xfeemail\n", 1),
    (codecs.BOM_UTF8 + b"email\nana@example.com\r\nlast\xc3", 3),  # a character cut off at the end
    (codecs.BOM_UTF8 + b"email\nana@example.com\n", 0),  # nothing wrong: no line to name
])
def test_bad_line_is_the_first_line_that_is_not_utf8(tmp_path: Path, content: bytes, line: int) -> None:
    source = tmp_path / "a.csv"
    source.write_bytes(content)
    with source.open("rb") as raw:
        raw.read(5)  # wherever a failed read left the file
        assert bad_line(raw) == line
