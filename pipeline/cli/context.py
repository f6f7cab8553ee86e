"""What every command shares: the global options, commands loaded on first use, and the one
place where errors become a line on stderr and an exit code."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from pipeline.errors import CampaignError, Interrupted

if TYPE_CHECKING:
    from pipeline.audience.tokens import Tokens
    from pipeline.db.engine import Store
    from pipeline.settings.workspace import Workspace


class CommandError(click.ClickException):
    """A library error as Click shows it: "campaign: error: ..." lines on stderr, and an exit code."""

    def __init__(self, lines: list[str], exit_code: int = 1, label: str = "error") -> None:
        super().__init__(lines[0] if lines else "")
        self.lines = lines
        self.exit_code = exit_code
        self.label = label

    def show(self, file: IO[Any] | None = None) -> None:
        for line in self.lines:
            click.echo(f"campaign: {self.label}: {line}", err=True)


def _os_error(exc: OSError) -> str:
    """"PATH: reason" for a file the user named that cannot be read or written."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{exc.filename}: {reason}" if exc.filename else reason


def _database_error(exc: Exception) -> str | None:
    """A database driver's complaint (a full disk, a lost server) as one line; None if it is not one.
    It comes wrapped by SQLAlchemy, or straight from the driver where bulk imports and sending talk
    to it directly. SQLAlchemy and the drivers are only looked at if a command already loaded them."""
    wrapper = sys.modules.get("sqlalchemy.exc")
    drivers = tuple(module.Error for name in ("sqlite3", "psycopg") if (module := sys.modules.get(name)) is not None)
    if wrapper is not None and isinstance(exc, wrapper.DBAPIError):
        orig: BaseException | None = exc.orig
    elif drivers and isinstance(exc, drivers):
        orig = exc
    else:
        return None
    reason = str(orig).strip().splitlines()[0] if orig is not None else type(exc).__name__
    # SQLite says SQLITE_FULL ("database or disk is full") or SQLITE_IOERR ("disk I/O error") when a
    # write fails; PostgreSQL's disk_full and io_error are SQLSTATE 53100 and 58030.
    name = getattr(orig, "sqlite_errorname", None) or ""
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR")) or getattr(orig, "sqlstate", None) in ("53100", "58030"):
        return (f"the database could not write ({reason}): the disk may be full; nothing of the change in "
                "progress was saved")
    return f"the database refused a change ({reason}); nothing of this command's change was kept"


def render_errors(exc: BaseException) -> CommandError | None:
    """The one renderer: every failure a user can meet, as lines and an exit code."""
    if isinstance(exc, CampaignError):
        return CommandError(exc.lines, exc.exit_code, exc.label)
    if isinstance(exc, KeyboardInterrupt):
        return render_errors(Interrupted("interrupted by Ctrl-C"))
    if isinstance(exc, BrokenPipeError):
        return CommandError([], 1)  # the reader of our output went away: nothing left to say
    if isinstance(exc, OSError):
        return CommandError([_os_error(exc)], 1)
    if isinstance(exc, Exception):
        message = _database_error(exc)
        if message is not None:
            return CommandError([message], 1)
    return None


class CampaignGroup(click.Group):
    """The root group: commands imported on first use (see pipeline.cli.COMMANDS), errors rendered once."""

    def __init__(self, *args: Any, commands_table: Mapping[str, tuple[str, str]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.table = dict(commands_table or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.table)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.table:
            return None
        module, attribute = self.table[name][0].split(":")
        command = getattr(importlib.import_module(f"pipeline.cli.{module}"), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the table's summaries, so `--help` imports no command module."""
        limit = formatter.width - 6 - max(len(name) for name in self.table)
        rows = [(name, click.Command(name, help=summary).get_short_help_str(limit))
                for name, (_, summary) in self.table.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BaseException as exc:
            rendered = render_errors(exc)
            if rendered is None:
                raise
            raise rendered from None


@dataclass
class State:
    workspace_dir: Path
    db_url: str | None
    transport_url: str | None
    _workspace: Workspace | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            from pipeline.settings.workspace import load_workspace

            self._workspace = load_workspace(self.workspace_dir)
        return self._workspace

    @property
    def store(self) -> Store:
        if self._store is None:
            from pipeline.db.engine import Store, default_url

            self._store = Store(self.db_url or default_url(self.workspace.root))
        return self._store

    @property
    def tokens(self) -> Tokens:
        from pipeline.audience.tokens import Tokens

        return Tokens.of_workspace(self.workspace.root)


pass_state = click.make_pass_decorator(State)

NOW_OPTION = click.option("--now", hidden=True, help="Act as if it were this instant (for tests and replays).")


def parse_now(now: str | None) -> Callable[[], datetime]:
    """The clock a command runs by: the real one, or --now's fixed instant."""
    from pipeline.clock import parse_utc, utcnow

    if not now:
        return utcnow
    try:
        fixed = parse_utc(now)
    except ValueError:
        raise click.BadParameter(f"{now!r} is not an ISO time like 2026-12-01T17:00:00Z", param_hint="--now") from None
    return lambda: fixed
