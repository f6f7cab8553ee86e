"""FILE.rejects.csv: the rows an import turned away, each with its reason.

The rows go to a temporary file beside the import (".FILE.rejects.csv.XXXXXXXX"), put in
place only once the import is saved, so a failed or interrupted import leaves the previous
file as it was. While it runs, the import holds a lock on its temporary file; the lock goes
with the process however it ends, so a file of that name that nobody holds was left by an
import killed mid-way (kill -9, a power cut), and the next import in the folder removes it.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import stat
import tempfile
from pathlib import Path

from pipeline.errors import FileError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows, where a file open elsewhere cannot be removed anyway
    fcntl = None  # type: ignore[assignment]

# What tempfile.mkstemp makes of the prefix ".FILE.rejects.csv.": eight of [a-z0-9_] after it.
_TEMPORARY = re.compile(r"\..+\.rejects\.csv\.[a-z0-9_]{8}")
_ATTEMPTS = 8


class Rejects:
    """The rejects file of one import: rows added as they come, put in place by finish()."""

    def __init__(self, source: Path, header: list[str], delimiter: str) -> None:
        self.path = source.with_name(source.name + ".rejects.csv")
        try:
            fd, self.tmp = _create_locked(source.parent, f".{self.path.name}.")
        except OSError as exc:
            raise self._failed(exc) from None
        self.file = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.file, delimiter=delimiter)
        self.count = 0
        self._write([*header, "reason"])

    def add(self, cells: list[str], reason: str) -> None:
        self._write([*cells, reason])
        self.count += 1

    def flush(self) -> None:
        """Every row on disk, or FileError: called before the import commits, so that a full disk
        here keeps the list as it was."""
        try:
            self.file.flush()
        except OSError as exc:
            raise self._failed(exc) from None

    def finish(self) -> Path | None:
        """Put the file in place (if any row was rejected); the import is saved."""
        # Renamed while still open, so the lock is held until the name is no longer a temporary one.
        if os.name == "nt":  # pragma: no cover - an open file cannot be renamed there
            self.file.close()
        if self.count:
            os.replace(self.tmp, self.path)
            self.file.close()
            return self.path
        self.tmp.unlink(missing_ok=True)
        self.file.close()
        self.path.unlink(missing_ok=True)  # an old rejects file would describe another import
        return None

    def discard(self) -> None:
        with contextlib.suppress(OSError):  # a disk that is full fails the flush again here
            self.file.close()
        self.tmp.unlink(missing_ok=True)

    def _write(self, row: list[str]) -> None:
        try:
            self.writer.writerow(row)
        except OSError as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> FileError:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return FileError(f"cannot write the rejected rows: {reason} (nothing was imported)", where=self.path)


def remove_leftovers(folder: Path) -> list[Path]:
    """Remove the temporary rejects files that imports killed mid-way left in folder: only
    names of that pattern, only plain files, and only those no running import holds."""
    try:
        names = sorted(name for name in os.listdir(folder) if _TEMPORARY.fullmatch(name))
    except OSError:
        return []
    return [folder / name for name in names if _remove_if_abandoned(folder / name)]


def _create_locked(folder: Path, prefix: str) -> tuple[int, Path]:
    for _ in range(_ATTEMPTS):
        fd, name = tempfile.mkstemp(prefix=prefix, dir=folder)
        try:
            _lock(fd, wait=True)
            # Between mkstemp and the lock, another import's sweep may have taken the new file
            # for a leftover and removed it; then take another name.
            if os.path.samestat(os.fstat(fd), os.stat(name)):
                return fd, Path(name)
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
        os.close(fd)
    raise OSError(f"its temporary files in {folder} kept disappearing")


def _lock(fd: int, wait: bool) -> bool:
    """An exclusive lock on the open file; False if another process holds it. Where locks are
    not to be had (no fcntl, or a file system without them), True: removing then fails on a
    file in use (Windows) or is not attempted (see _remove_if_abandoned)."""
    if fcntl is None:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:
        return wait  # no locks here: the owner goes on without, a sweep leaves the file alone
    return True


def _remove_if_abandoned(path: Path) -> bool:
    if fcntl is None:  # pragma: no cover - Windows refuses to remove a file another process has open
        try:
            if path.is_symlink() or not path.is_file():
                return False
            path.unlink()
        except OSError:
            return False
        return True
    try:
        # No following links, no waiting on a pipe that happens to carry the name.
        fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or not _lock(fd, wait=False):
            return False
        if not os.path.samestat(opened, os.lstat(path)):
            return False  # replaced since it was opened
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
