"""Writing files and folders so that a failure leaves either the old state or the new, never half."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import FileError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def within(root: Path, path: Path) -> Path | None:
    """path with symlinks resolved, if it lies inside root (also resolved); None if it escapes.

    What a campaign folder names (articles, templates and what they include, a digest's folder)
    is read into mail that goes to every reader: a folder reviewed in a pull request must not be
    able to pull /etc/passwd or a file behind a symlink into it.
    """
    resolved = path.resolve()
    return resolved if resolved.is_relative_to(root.resolve()) else None


def cannot(action: str, path: Path, exc: OSError) -> FileError:
    """The one-line error for a file or folder the user named: what failed, where, and why."""
    return FileError(f"cannot {action}: {exc.strerror or exc}", where=path)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write to a temporary file beside path, then rename it over path; a failure (a full disk,
    a folder that cannot be written) leaves path as it was and is a FileError naming it."""
    write_all_atomic({path: data})


def write_all_atomic(files: Mapping[Path, str | bytes]) -> None:
    """Write several files so that none is replaced unless all were written: each goes to a
    temporary file beside it first, and only then are they renamed into place."""
    staged: list[tuple[Path, str]] = []
    try:
        for path, data in files.items():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            except FileExistsError:  # something on the way is a file, not a folder
                raise FileError(f"cannot write: {os.strerror(errno.ENOTDIR)}", where=path) from None
            except OSError as exc:
                raise cannot("write", path, exc) from None
            staged.append((path, tmp))
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data.encode("utf-8") if isinstance(data, str) else data)
                os.chmod(tmp, 0o666 & ~_umask())
            except OSError as exc:
                raise cannot("write", path, exc) from None
        for path, tmp in staged:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise cannot("write", path, exc) from None
    finally:
        for _, tmp in staged:
            Path(tmp).unlink(missing_ok=True)


@contextmanager
def staged_directory(target: Path, *, replace: bool = False) -> Iterator[Path]:
    """A scratch directory beside target that becomes target only if the block finishes.

    A target that is there by then is an error unless `replace`: then the new directory takes
    its place whole, swapped with it in one step where the system can (Linux's renameat2), else
    right after the old one is moved aside. Callers check first that it is theirs to replace.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise cannot("create", target, exc) from None
    try:
        yield scratch
        os.chmod(scratch, 0o777 & ~_umask())  # mkdtemp's directory is private; a web server may read this one
        if not (replace and target.exists()):
            os.replace(scratch, target)  # atomic; also replaces an empty directory
        elif _exchange(scratch, target):
            shutil.rmtree(scratch)  # the old directory, now
        else:
            old = scratch.with_name(scratch.name + ".old")
            os.rename(target, old)
            try:
                os.rename(scratch, target)
            except OSError:
                os.rename(old, target)  # put the old one back rather than leave none
                raise
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise cannot("create", target, exc) from None
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _exchange(one: Path, other: Path) -> bool:
    """Swap two directories' names in one step; False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(one), at_fdcwd, os.fsencode(other), rename_exchange) == 0
