"""Files written whole or not at all, and a path that cannot be written named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import FileError
from pipeline.files import staged_directory, write_all_atomic, write_atomic


def test_several_files_are_replaced_together_or_not_at_all(tmp_path: Path) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("old a")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, so nothing can be written beneath it")
    with pytest.raises(FileError) as caught:
        write_all_atomic({first: "new a", second: "new b", blocked / "c.txt": "c"})
    assert str(caught.value) == f"{blocked / 'c.txt'}: cannot write: Not a directory"
    assert first.read_text() == "old a" and not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "blocked"]  # no temporary file left
    write_all_atomic({first: "new a", second: b"new b"})
    assert (first.read_text(), second.read_bytes()) == ("new a", b"new b")


def test_unwritable_places_are_one_line_errors_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileError) as caught:
        write_atomic(Path("/proc/no-such-folder/x.csv"), "x")
    assert str(caught.value) == "/proc/no-such-folder/x.csv: cannot write: No such file or directory"
    with pytest.raises(FileError) as caught:
        with staged_directory(Path("/proc/no-such-folder/site")):
            pass
    assert str(caught.value) == "/proc/no-such-folder/site: cannot create: No such file or directory"


@pytest.mark.parametrize("atomic", [True, False], ids=["exchanged", "moved-aside"])
def test_a_staged_directory_replaces_a_full_one_whole_only_when_asked(tmp_path: Path, atomic: bool,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import files

    if not atomic:
        monkeypatch.setattr(files, "_exchange", lambda one, other: False)  # a system without renameat2
    target = tmp_path / "site"
    target.mkdir()
    (target / "old.html").write_text("old")
    with pytest.raises(FileError) as caught:
        with staged_directory(target) as scratch:
            (scratch / "new.html").write_text("new")
    assert str(caught.value).startswith(f"{target}: cannot create: ")
    assert [p.name for p in target.iterdir()] == ["old.html"]
    with staged_directory(target, replace=True) as scratch:
        (scratch / "new.html").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.html"]
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # neither the scratch nor the old one is left
    with pytest.raises(KeyboardInterrupt):
        with staged_directory(target, replace=True) as scratch:
            (scratch / "half.html").write_text("half")
            raise KeyboardInterrupt
    assert [p.name for p in target.iterdir()] == ["new.html"] and [p.name for p in tmp_path.iterdir()] == ["site"]
