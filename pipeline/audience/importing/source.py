"""Opening an import file: refusing what is not CSV text, finding its delimiter, decoding it, and
finding the line of a byte that is not UTF-8."""

from __future__ import annotations

import codecs
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pipeline.errors import ImportFailed


def sniff_delimiter(first_line: str) -> str:
    counts = {d: 0 for d in ",;\t"}
    quoted = False
    for char in first_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def looks_binary(head: bytes) -> bool:
    """Many NULs, or NULs in bytes that are not UTF-8: a stray NUL in a name is only a dirty cell."""
    nuls = head.count(b"\x00")
    if not nuls:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut at the end of the sample
            return True
    return nuls > max(2, len(head) // 100)


def open_csv(path: Path) -> BinaryIO:
    try:
        raw = path.open("rb")
        head = raw.read(8192)
        raw.seek(0)
    except FileNotFoundError:
        raise ImportFailed("no such file", where=path) from None
    except IsADirectoryError:
        raise ImportFailed("is a directory, not a CSV file", where=path) from None
    except OSError as exc:
        raise ImportFailed(f"cannot be read: {exc.strerror or exc}", where=path) from None
    if not head.strip():
        raw.close()
        raise ImportFailed("is empty", where=path)
    if looks_binary(head):
        raw.close()
        raise ImportFailed("is a binary file, not CSV text", where=path)
    return raw


def decoded_lines(raw: BinaryIO) -> Iterator[str]:
    """The file's lines as text; UnicodeDecodeError at the first byte that is not UTF-8 (find
    its line with bad_line). Decoded by map, in C: a generator step for every line cost a
    twentieth of the parsing."""
    first = raw.readline()
    if first.startswith(codecs.BOM_UTF8):
        first = first[len(codecs.BOM_UTF8):]
    return itertools.chain([first.decode("utf-8")], map(bytes.decode, raw))


def bad_line(raw: BinaryIO) -> int:
    """The number of the file's first line that is not UTF-8 text (0 if there is none): the
    file is read again from the start, only once decoded_lines has failed."""
    raw.seek(0)
    for number, line in enumerate(raw, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 0
