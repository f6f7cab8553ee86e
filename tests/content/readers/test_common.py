from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from pipeline.content.models import Span
from pipeline.content.readers import detect_format, read_article
from pipeline.content.readers.common import first_sentence, linkify
from pipeline.errors import ArticleError


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("a.md", b"plain words", "markdown"),
    ("a.TXT", b"# looks like markdown", "text"),
    ("a.htm", b"hello", "html"),
    ("article", b"<!doctype html><html><body><p>x</p></body></html>", "html"),
    ("article", b"<!-- saved --> <html><body>x</body></html>", "html"),
    ("article", b"---\ntitle: x\n---\nbody", "markdown"),
    ("article", b"Title\n\n## Heading\n\ntext", "markdown"),
    ("article", b"Title\n\nSee [our site](https://x.example) today.", "markdown"),
    ("article", b"Title\n\nJust text pasted from a page.\n\xe2\x80\xa2 a bullet", "text"),
])
def test_format_by_extension_then_content(name: str, content: bytes, expected: str) -> None:
    assert detect_format(Path(name), content) == expected


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ArticleError, match=r"nope\.md: no such file$"):
        read_article(tmp_path / "nope.md")


@pytest.mark.parametrize("content", [b"", b"  \n\t\n", codecs.BOM_UTF8 + b"\n \n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(ArticleError, match=r"empty\.txt: is empty$"):
        read_article(path)


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "photo.md"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(ArticleError, match=r"photo\.md: is a binary file, not a Markdown, HTML or text article$"):
        read_article(path)


def test_undecodable_file_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Title\nCaf\u00e9 and cr\u00e8me.\n".encode("latin-1"))
    with pytest.raises(ArticleError, match=r"latin1\.txt: is not valid utf-8 text \(byte 0xe9 on line 2, offset 9\); "
                                           r"save it as UTF-8$"):
        read_article(path)


def test_utf16_with_bom_and_utf8_bom_are_read(tmp_path: Path) -> None:
    for encoding, name in (("utf-16", "a.txt"), ("utf-8-sig", "b.txt")):
        path = tmp_path / name
        path.write_bytes("Tête\nLa première ligne.\n".encode(encoding))
        assert read_article(path).title == "Tête"


def test_directory_is_not_an_article(tmp_path: Path) -> None:
    with pytest.raises(ArticleError, match=r"is a directory, not an article file$"):
        read_article(tmp_path)


def test_control_characters_are_dropped_crlf_normalised(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"Title\r\nA line\x0c with a form feed.\r\n")
    assert read_article(path).lead == (Span("A line with a form feed."),)


def test_linkify_trims_sentence_punctuation_and_keeps_parentheses_balanced() -> None:
    assert linkify("See https://x.example/a_(b). Or mail me@x.example!") == (
        Span("See "), Span("https://x.example/a_(b)", href="https://x.example/a_(b)"), Span(". Or mail "),
        Span("me@x.example", href="mailto:me@x.example"), Span("!"))
    assert linkify("(https://x.example/page)") == (
        Span("("), Span("https://x.example/page", href="https://x.example/page"), Span(")"))


@pytest.mark.parametrize(("text", "expected"), [
    ("Dr. Lin sees patients on Monday. Book early.", "Dr. Lin sees patients on Monday."),
    ("Is it safe? Yes, for most people.", "Is it safe?"),
    ("No full stop at all", "No full stop at all"),
    ("Herbs, e.g. ginger, help. More later.", "Herbs, e.g. ginger, help."),
])
def test_first_sentence(text: str, expected: str) -> None:
    assert first_sentence(text) == expected
