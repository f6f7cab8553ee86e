"""The helper process that parses a large import file while this process writes it.

Parsing a row costs about as much as storing it, so from a few megabytes on a forked helper
parses and sends pickled batches down a pipe while this process writes them. The helper only
reads the file, and it never outlives the import:

- it dies with its parent: on Linux the kernel kills it when the parent goes
  (PR_SET_PDEATHSIG), even after kill -9; elsewhere it stops at its next write, which fails
  once nobody holds the pipe's other end, and it checks its parent after every batch;
- it ignores Ctrl-C, which a terminal sends to both processes: the parent stops, kills the
  helper and waits for it;
- it is forked with SIGINT held back, so a Ctrl-C cannot land between the fork and the moment
  the parent has recorded the helper (that left a helper blocked on its pipe for good), nor in
  the helper before it ignores Ctrl-C (that printed its traceback).
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
import struct
import sys
from collections.abc import Iterator
from typing import IO, NoReturn

from pipeline.audience.importing.parse import Header, Parsed, Parser, new_record
from pipeline.errors import ImportFailed

PARALLEL_FROM_BYTES = 4 << 20  # below this, starting a process costs more than it saves
_LENGTH = struct.Struct("!Q")  # each message: its length, then the pickle
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_PIPE_BYTES = 1 << 20  # a batch pickles to about 300 KB; Linux lets anyone have pipes this large


def parse(parser: Parser) -> Iterator[Header | Parsed]:
    """The parser's items, produced by a helper process when the file is large."""
    size = parser.path.stat().st_size if parser.path.is_file() else 0
    if size < PARALLEL_FROM_BYTES or not hasattr(os, "fork"):
        yield from parser.items()
        return
    helper = _Helper()
    try:
        helper.start(parser)
        yield from helper.items(parser)
    finally:
        helper.stop()


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """A Ctrl-C during the block is raised only when it ends: for steps whose result (a process,
    a file) must be on record before anything may stop them, so that it is cleaned up."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


class _Helper:
    def __init__(self) -> None:
        self.pid: int | None = None
        self.pipe: IO[bytes] | None = None

    def start(self, parser: Parser) -> None:
        parent = os.getpid()
        with interrupts_held():
            read, write = os.pipe()
            _widen(write)
            try:
                pid = os.fork()
            except BaseException:
                os.close(read)
                os.close(write)
                raise
            if pid == 0:
                os.close(read)  # the parent must hold the only reading end, so that its death breaks the pipe
                _serve(parser, write, parent)
            self.pid = pid
            os.close(write)
            self.pipe = os.fdopen(read, "rb")

    def items(self, parser: Parser) -> Iterator[Header | Parsed]:
        while True:
            item = self._receive(parser)
            if item is None:
                return
            if isinstance(item, tuple):
                raise ImportFailed(item[1])
            if isinstance(item, Parsed):
                item.records = list(map(new_record, item.records))
            yield item

    def _receive(self, parser: Parser) -> object:
        assert self.pipe is not None
        head = self.pipe.read(_LENGTH.size)
        if len(head) == _LENGTH.size:
            (length,) = _LENGTH.unpack(head)
            data = self.pipe.read(length)
            if len(data) == length:
                return pickle.loads(data)
        raise ImportFailed(f"the file reader stopped unexpectedly ({self._end()}); nothing was imported",
                           where=parser.path)

    def _end(self) -> str:
        """Kill the helper (if it is still there) and wait for it; how it ended, in words."""
        pid, self.pid = self.pid, None
        if pid is None:
            return "already stopped"
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # a process that already ended keeps its own exit status
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:  # someone else reaped it
            return "gone"
        code = os.waitstatus_to_exitcode(status)
        return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"

    def stop(self) -> None:
        if self.pipe is not None:
            self.pipe.close()
            self.pipe = None
        self._end()


def _serve(parser: Parser, fd: int, parent: int) -> NoReturn:
    """The helper's whole life: parse, send each item (or the failure), exit without cleaning up
    anything of the parent's (its database connection, its buffered output, its atexit work)."""
    code = 1  # unless it ends as planned
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # one held back at the fork is dropped
        _die_with_parent(parent)
        gc.disable()  # every object here lives one batch; reference counting frees them
        parser.plain = True  # this process's own copy of the parser
        with os.fdopen(fd, "wb") as out:
            try:
                for item in parser.items():
                    _send(out, item)
                    if os.getppid() != parent:
                        break
                else:
                    _send(out, None)
            except ImportFailed as exc:
                _send(out, ("failed", str(exc)))
            except Exception as exc:  # noqa: BLE001 - the parent reports it as the import's failure
                _send(out, ("failed", f"{parser.path}: {type(exc).__name__}: {exc}"))
        code = 0
    except BrokenPipeError:
        code = 0  # the parent stopped reading or is gone: nothing is left to do
    finally:
        os._exit(code)


def _widen(pipe: int) -> None:
    """Room in the pipe for a few batches (Linux), so the helper parses ahead while the writer
    is busy, rather than waiting for it at each batch."""
    import fcntl

    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


def _send(out: IO[bytes], item: object) -> None:
    data = pickle.dumps(item, pickle.HIGHEST_PROTOCOL)
    out.write(_LENGTH.pack(len(data)))
    out.write(data)
    out.flush()


def _die_with_parent(parent: int) -> None:
    """On Linux, have the kernel kill this process when its parent ends; then make sure the
    parent had not already ended before that was asked."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):  # the pipe and the parent check remain
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)
