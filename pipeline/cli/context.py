"""What every command shares: the global options, and turning library errors into exit codes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click

from pipeline.audience.tokens import Tokens, load_secret
from pipeline.db.engine import Store, default_url
from pipeline.errors import CampaignError
from pipeline.settings.workspace import Workspace, load_workspace


class CommandError(click.ClickException):
    """A library error as Click shows it: one line on stderr, exit code 1."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"campaign: error: {self.format_message()}", err=True)


class CampaignGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CampaignError as exc:
            raise CommandError(str(exc), exc.exit_code) from None


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
            self._workspace = load_workspace(self.workspace_dir)
        return self._workspace

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.db_url or default_url(self.workspace.root))
        return self._store

    @property
    def tokens(self) -> Tokens:
        return Tokens(load_secret(self.workspace.root))


pass_state = click.make_pass_decorator(State)
