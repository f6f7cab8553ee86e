"""Writing files and folders so that a failure leaves either the old state or the new, never half."""

from __future__ import annotations

import errno
import os
import shutil
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
def staged_directory(target: Path) -> Iterator[Path]:
    """A scratch directory beside target that becomes target only if the block finishes."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise cannot("create", target, exc) from None
    try:
        yield scratch
        os.chmod(scratch, 0o777 & ~_umask())
        os.replace(scratch, target)  # atomic; also replaces an empty directory
    except OSError as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise cannot("create", target, exc) from None
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
