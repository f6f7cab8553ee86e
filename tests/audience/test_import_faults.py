"""Faults during an import, produced for real: kill -9 and Ctrl-C of a running `campaign
subscribers import`, a database that cannot grow, a folder where the rejects cannot be written;
and, with the same means, `campaign send` on a database that cannot grow.

The process tests run the command as a user does (python -m pipeline, in a session of its own,
so that a signal to its process group is what a terminal's Ctrl-C sends) and find its helper
through /proc, so they run on Linux. Writes are made to fail two ways, neither needing root:
SQLite's own cap on a database's size (PRAGMA max_page_count, set on each new connection by a
listener in this process: SQLITE_FULL, "database or disk is full"), and RLIMIT_FSIZE on the
command's process (every write past the limit fails with EFBIG: SQLITE_IOERR, "disk I/O error",
for the database, OSError for the rejects file).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TypeVar

import pytest
import sqlalchemy as sa

import pipeline
from pipeline.audience.importing.helper import PARALLEL_FROM_BYTES
from pipeline.audience.importing.write import ImportOptions, import_csv
from pipeline.audience.subscribers import Changes, add
from pipeline.db.engine import Store, default_url
from pipeline.db.schema import subscribers
from tests.conftest import Campaign

ROOT = Path(pipeline.__file__).parents[1]
ROWS = 250_000  # several seconds of work, so each moment below falls inside the import
on_linux = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes through /proc")
on_posix = pytest.mark.skipif(os.name != "posix", reason="limits a process's writes with RLIMIT_FSIZE")
T = TypeVar("T")
STOPPED = "campaign: stopped: interrupted by Ctrl-C"
FULL = ("campaign: error: the database could not write ({}): the disk may be full; nothing of the change in "
        "progress was saved")


# --- the files, the database, the processes -----------------------------------------------------

@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("email,first_name,last_name,city\n")
        for i in range(ROWS):
            out.write(f"user{i}@example.com,Name{i},Last{i},City{i % 50}\n")
            if i % 1000 == 0:
                out.write(f"not-an-address-{i},X,Y,Z\n")
    assert path.stat().st_size > 2 * PARALLEL_FROM_BYTES  # parsed by the helper process
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Where the files to import are; the tests list it exactly."""
    path = tmp_path / "in"
    path.mkdir()
    return path


@pytest.fixture
def big(big_file: Path, folder: Path) -> Path:
    return Path(shutil.copy(big_file, folder / "big.csv"))


def small_file(folder: Path, good: int = 5000, bad: int = 5, name: str = "small.csv") -> Path:
    path = folder / name
    rows = [f"s{i}@example.com,S{i}" for i in range(good)] + [f"bad-{i}-{'x' * 40},B" for i in range(bad)]
    path.write_text("email,first_name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def ws(workspace_dir: Path) -> Path:
    """A workspace whose database holds one subscriber, and no connection open to it."""
    store = Store(default_url(workspace_dir))
    with store.transaction() as conn:
        add(conn, "keep@example.com", Changes(first_name="Keep"), "test")
    store.close()
    return workspace_dir


def database(workspace: Path) -> list[str]:
    """Everything in the database, read by a new connection (as the next command would read the
    file and its write-ahead log), after checking the file is sound."""
    with contextlib.closing(sqlite3.connect(workspace / "campaign.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return list(db.iterdump())


def subscriber_count(workspace: Path) -> int:
    with contextlib.closing(sqlite3.connect(workspace / "campaign.db")) as db:
        count: int = db.execute("SELECT count(*) FROM subscribers").fetchone()[0]
        return count


def temporaries(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if ".rejects.csv." in name)


def locked(path: Path) -> bool:
    """Whether a process holds a flock() on the file (so an import has it, not only created it)."""
    with contextlib.suppress(FileNotFoundError):
        inode = f":{os.stat(path).st_ino} "
        return any(" FLOCK " in line and inode in line for line in Path("/proc/locks").read_text().splitlines())
    return False


def _stat(pid: int) -> tuple[str, int]:
    """A process's state letter and parent pid ("X" if there is no such process)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "X", 0
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    return _stat(pid)[0] not in "ZX"  # a zombie has ended; only its parent has not collected it


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):  # the kernel's own list, where it keeps one: quicker
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            state, parent = _stat(int(entry.name))
            if parent == pid and state not in "ZX":
                found.append(int(entry.name))
    return found


def running_with(argument: str) -> list[int]:
    """Live processes with this argument on their command line (a helper has its parent's)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and alive(int(entry.name)):
            with contextlib.suppress(OSError):
                if argument.encode() in Path(entry.path, "cmdline").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
    return found


def wait_for(condition: Callable[[], T], what: str, timeout: float = 30) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout} s")
        time.sleep(0.002)


def writes_capped_at(limit: int) -> Callable[[], None]:
    """For preexec_fn: every write past `limit` bytes of a file fails (EFBIG), as on a full disk."""
    import resource

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


class Command:
    """`campaign ARGS...` in a process of its own, in a session of its own."""

    def __init__(self, workspace: Path, *args: str, code: str | None = None,
                 preexec: Callable[[], None] | None = None) -> None:
        start = [sys.executable, "-c", code] if code else [sys.executable, "-m", "pipeline"]
        self.out: IO[bytes] = open(workspace.parent / "stdout", "w+b")  # noqa: SIM115 - closed in finish()
        self.err: IO[bytes] = open(workspace.parent / "stderr", "w+b")  # noqa: SIM115 - closed in finish()
        self.process = subprocess.Popen(
            [*start, "--workspace", str(workspace), *args], stdin=subprocess.DEVNULL, stdout=self.out,
            stderr=self.err, start_new_session=True, preexec_fn=preexec,  # noqa: PLW1509 - no threads here
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.pid = self.process.pid

    def helper(self) -> int:
        (pid,) = wait_for(lambda: children(self.pid), "helper process")
        return pid

    def interrupt(self, whole_group: bool = True) -> None:
        assert self.process.poll() is None, "the command ended before the moment came"
        if whole_group:
            os.killpg(self.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        else:
            os.kill(self.pid, signal.SIGINT)

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        code = self.process.wait(timeout)
        self.out.seek(0)
        self.err.seek(0)
        out, err = self.out.read().decode(), self.err.read().decode()
        self.out.close()
        self.err.close()
        return code, out, err

    def kill(self) -> None:
        """Whatever a failed test left of this command, its helper included."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(10)


@contextlib.contextmanager
def command(workspace: Path, *args: str, **options: object) -> Iterator[Command]:
    started = Command(workspace, *args, **options)  # type: ignore[arg-type]
    try:
        yield started
    finally:
        started.kill()


def errors(stderr: str) -> list[str]:
    """The lines the command's edge wrote; the rest of stderr may only be the progress label."""
    lines = stderr.splitlines()
    assert all(line.startswith(("campaign:", "Importing ")) for line in lines), stderr
    return [line for line in lines if line.startswith("campaign:")]


# --- kill -9 ------------------------------------------------------------------------------------

@on_linux
def test_kill_9_takes_the_helper_along_and_the_next_import_removes_its_temporary_file(
        ws: Path, big: Path, folder: Path, campaign: Campaign) -> None:
    before = database(ws)
    with command(ws, "subscribers", "import", str(big)) as running:
        helper = running.helper()
        wait_for(lambda: temporaries(folder), "temporary rejects file")  # rows are being written
        os.kill(running.pid, signal.SIGKILL)
        running.process.wait(10)
        wait_for(lambda: not alive(helper), "end of the helper after its parent's", timeout=2)
    assert len(temporaries(folder)) == 1  # what the killed import had under way
    assert database(ws) == before
    assert campaign("subscribers", "import", str(small_file(folder, good=2))).exit_code == 0
    assert sorted(os.listdir(folder)) == ["big.csv", "small.csv", "small.csv.rejects.csv"]
    assert subscriber_count(ws) == 3


@on_linux
def test_where_the_kernel_does_not_help_the_helper_still_ends_with_its_parent(
        ws: Path, big: Path, folder: Path) -> None:
    # As on systems without PR_SET_PDEATHSIG: the helper notices when its pipe breaks.
    code = ("import pipeline.audience.importing.helper as helper; helper._die_with_parent = lambda parent: None; "
            "from pipeline.cli import main; main()")
    with command(ws, "subscribers", "import", str(big), code=code) as running:
        helper = running.helper()
        wait_for(lambda: temporaries(folder), "temporary rejects file")
        os.kill(running.pid, signal.SIGKILL)
        running.process.wait(10)
        wait_for(lambda: not alive(helper), "end of the helper after its parent's", timeout=2)


@on_linux
def test_a_helper_killed_on_its_own_fails_the_import_in_one_line(ws: Path, big: Path, folder: Path) -> None:
    before = database(ws)
    with command(ws, "subscribers", "import", str(big)) as running:
        helper = running.helper()
        wait_for(lambda: temporaries(folder), "temporary rejects file")
        os.kill(helper, signal.SIGKILL)  # as the kernel's out-of-memory killer would
        code, out, err = running.finish()
    assert (code, out, errors(err)) == (1, "", [(f"campaign: error: {big}: the file reader stopped unexpectedly "
                                                 "(killed by SIGKILL); nothing was imported")])
    assert os.listdir(folder) == ["big.csv"]
    assert database(ws) == before


@on_linux
def test_an_import_running_beside_keeps_its_temporary_file(ws: Path, big: Path, folder: Path,
                                                           campaign: Campaign) -> None:
    with command(ws, "subscribers", "import", str(big)) as running:
        # Its own file once it holds it: until then another import's sweep may take it, and it takes another.
        live = wait_for(lambda: [n for n in temporaries(folder) if locked(folder / n)], "locked temporary file")
        abandoned = folder / ".old.csv.rejects.csv.k2l_9x0q"  # as an import killed last week left it
        abandoned.write_text("email,reason\nx,line 2: no\n", encoding="utf-8")
        assert campaign("subscribers", "import", str(small_file(folder, good=2, bad=0))).exit_code == 0
        assert running.process.poll() is None, "the big import ended before the small one ran beside it"
        assert temporaries(folder) == live
        code, out, _ = running.finish()
    assert (code, out) == (0, f"added {ROWS}, updated 0, unchanged 0, rejected 250\n")
    assert sorted(os.listdir(folder)) == ["big.csv", "big.csv.rejects.csv", "small.csv"]
    assert len((folder / "big.csv.rejects.csv").read_text().splitlines()) == 251


def test_only_abandoned_temporary_rejects_files_are_removed(store: Store, tmp_path: Path, folder: Path) -> None:
    fcntl = pytest.importorskip("fcntl")
    (tmp_path / "elsewhere.txt").write_text("keep me")
    for name in (".a.csv.rejects.csv.abcd_123", ".b.csv.rejects.csv.efgh5678", "a.csv.rejects.csv",
                 ".a.csv.rejects.csv.abc", ".a.csv.rejects.csv.abcdefghi", ".a.csv.rejects.csv.ABCDEFGH",
                 "a.csv.rejects.csv.abcdefgh", ".a.csv.rejects.csv.abcdefgh.bak"):
        (folder / name).write_text("email,reason\n")
    (folder / ".c.csv.rejects.csv.folder12").mkdir()
    (folder / ".d.csv.rejects.csv.link1234").symlink_to(tmp_path / "elsewhere.txt")
    os.mkfifo(folder / ".e.csv.rejects.csv.fifo1234")
    source = small_file(folder, good=1, bad=0, name="a.csv")
    with open(folder / ".b.csv.rejects.csv.efgh5678", "r+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as an import still running holds its own
        report = import_csv(store, source, ImportOptions())
    assert report.added == 1
    assert sorted(os.listdir(folder)) == sorted([
        ".a.csv.rejects.csv.ABCDEFGH", ".a.csv.rejects.csv.abc", ".a.csv.rejects.csv.abcdefgh.bak",
        ".a.csv.rejects.csv.abcdefghi", ".b.csv.rejects.csv.efgh5678", ".c.csv.rejects.csv.folder12",
        ".d.csv.rejects.csv.link1234", ".e.csv.rejects.csv.fifo1234", "a.csv", "a.csv.rejects.csv.abcdefgh"])
    assert (tmp_path / "elsewhere.txt").read_text() == "keep me"


# --- Ctrl-C -------------------------------------------------------------------------------------

def interrupted(ws: Path, big: Path, after: str, delay: float, whole_group: bool = True) -> None:
    """Ctrl-C an import `delay` seconds after its helper appears or after its rows start being
    written ("helper", "rows"), and check what it left: one line, nothing else at all."""
    before = database(ws)
    with command(ws, "subscribers", "import", str(big)) as running:
        helper = running.helper()
        if after == "rows":
            wait_for(lambda: temporaries(big.parent), "temporary rejects file")
        time.sleep(delay)
        running.interrupt(whole_group)
        code, out, err = running.finish()
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert (code, out, errors(err)) == (130, "", [STOPPED])
    assert not alive(helper) and running_with(str(big)) == []
    assert os.listdir(big.parent) == ["big.csv"]
    assert database(ws) == before


@on_linux
def test_ctrl_c_as_the_helper_starts_is_one_line_and_changes_nothing(ws: Path, big: Path) -> None:
    # The moment of the fork is short: it takes a few tries to land in it.
    for delay in (0, 0.0002, 0.0005, 0.001, 0.002, 0.004):
        interrupted(ws, big, "helper", delay)


@on_linux
@pytest.mark.parametrize(("delay", "whole_group"), [(0, True), (1.0, True), (0.3, False)],
                         ids=["as rows start being written", "a second later", "to the import alone"])
def test_ctrl_c_while_rows_are_written_is_one_line_and_changes_nothing(ws: Path, big: Path, delay: float,
                                                                       whole_group: bool) -> None:
    interrupted(ws, big, "rows", delay, whole_group)


def test_ctrl_c_during_the_commit_is_too_late_to_stop_the_import(store: Store, folder: Path) -> None:
    source = small_file(folder, good=3, bad=1)

    def interrupt(_conn: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    sa.event.listen(store.engine, "commit", interrupt)
    try:
        report = import_csv(store, source, ImportOptions())
    except KeyboardInterrupt:
        pytest.fail("a Ctrl-C during the commit stopped the import")
    assert (report.added, report.rejected) == (3, 1)
    assert report.warnings == ["Ctrl-C came while the import was being saved; it was saved in full"]
    assert sorted(os.listdir(folder)) == ["small.csv", "small.csv.rejects.csv"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    sa.event.remove(store.engine, "commit", interrupt)
    with store.reading() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(subscribers)).scalar() == 3


# --- writes that fail ---------------------------------------------------------------------------

@pytest.fixture
def full_database() -> Iterator[None]:
    """Every SQLite database opened from here on cannot grow by a page: SQLITE_FULL."""
    def cap(dbapi_connection: object, _record: object) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    sa.event.listen(sa.engine.Engine, "connect", cap)
    yield
    sa.event.remove(sa.engine.Engine, "connect", cap)


@pytest.mark.parametrize("size", ["small", "big"])
def test_an_import_into_a_full_database_is_one_line_and_changes_nothing(
        ws: Path, folder: Path, campaign: Campaign, full_database: None, size: str,
        request: pytest.FixtureRequest) -> None:
    before = database(ws)
    source = small_file(folder) if size == "small" else request.getfixturevalue("big")
    result = campaign("subscribers", "import", str(source))
    assert (result.exit_code, result.stdout, errors(result.stderr)) == (
        1, "", [FULL.format("database or disk is full")])
    assert database(ws) == before
    assert temporaries(folder) == []


@on_posix
def test_an_import_whose_database_writes_fail_is_one_line_and_changes_nothing(ws: Path, folder: Path) -> None:
    before = database(ws)
    source = small_file(folder)
    # 64 KiB: the database opens (its shared-memory index is 32 KiB) but its log cannot take the rows.
    with command(ws, "subscribers", "import", str(source), preexec=writes_capped_at(64 << 10)) as running:
        code, out, err = running.finish()
    assert (code, out, errors(err)) == (1, "", [FULL.format("disk I/O error")])
    assert database(ws) == before
    assert os.listdir(folder) == ["small.csv"]


@on_posix
def test_rejects_that_cannot_be_written_are_one_line_and_change_nothing(ws: Path, folder: Path) -> None:
    before = database(ws)
    source = small_file(folder, good=10, bad=3000)  # about 150 KB of rejects, written before the database is
    with command(ws, "subscribers", "import", str(source), preexec=writes_capped_at(64 << 10)) as running:
        code, out, err = running.finish()
    assert (code, out, errors(err)) == (
        1, "", [(f"campaign: error: {folder / 'small.csv.rejects.csv'}: cannot write the rejected rows: "
                 "File too large (nothing was imported)")])
    assert database(ws) == before
    assert os.listdir(folder) == ["small.csv"]


# `campaign send` meets the same faults at the same edge: a second campaign's send on a database
# that cannot grow must not start, and say why in one line.

def first_send_then_a_second_campaign(workspace: Path, campaign: Campaign) -> None:
    assert campaign("subscribers", "import", str(workspace / "subscribers.csv")).exit_code == 0
    first = campaign("send", "back-pain", "--yes")
    assert first.exit_code == 0, first.stderr
    article = workspace / "campaigns" / "back-pain" / "article.md"
    assert campaign("new", "second", "--article", str(article), "--subject", "Second").exit_code == 0


def test_a_second_send_on_a_full_database_is_one_line_and_changes_nothing(
        ws: Path, campaign: Campaign, request: pytest.FixtureRequest) -> None:
    first_send_then_a_second_campaign(ws, campaign)
    before, outbox = database(ws), sorted(os.listdir(ws / "outbox" / "new"))
    request.getfixturevalue("full_database")
    result = campaign("send", "second", "--yes")
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", FULL.format("database or disk is full") + "\n")
    assert database(ws) == before
    assert sorted(os.listdir(ws / "outbox" / "new")) == outbox


@on_posix
def test_a_second_send_whose_database_writes_fail_is_one_line_and_changes_nothing(
        ws: Path, campaign: Campaign) -> None:
    first_send_then_a_second_campaign(ws, campaign)
    before, outbox = database(ws), sorted(os.listdir(ws / "outbox" / "new"))
    # 32 KiB: the database opens, but its log cannot take the send's recipients and frozen content.
    with command(ws, "send", "second", "--yes", preexec=writes_capped_at(32 << 10)) as running:
        code, out, err = running.finish()
    assert (code, out, err) == (1, "", FULL.format("disk I/O error") + "\n")
    assert database(ws) == before
    assert sorted(os.listdir(ws / "outbox" / "new")) == outbox
