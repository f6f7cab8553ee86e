"""`campaign bounces import`: bounce and complaint reports into the list's suppressions."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.context import State, pass_state
from pipeline.delivery.bounces.intake import record_reports
from pipeline.delivery.bounces.reports import read_reports


@click.group()
def bounces() -> None:
    """Import bounces and complaints."""


@bounces.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Read everything and report what would happen; change nothing.")
@pass_state
def import_(state: State, path: Path, dry_run: bool) -> None:
    """Import bounces and complaints from PATH: a Maildir (cur/ and new/), a folder of .eml
    files, one .eml file, or a provider's CSV export.

    Delivery status notifications (RFC 3464) and complaint reports (ARF, RFC 5965) are matched
    to subscribers by the Message-ID of the message that bounced, otherwise by address. Hard
    bounces and complaints suppress the address at once, soft bounces after [bounces]
    soft_limit sends. Importing the same report again changes nothing. One transaction.

    \b
    Examples:
      campaign bounces import ~/Maildir/.Bounces
      campaign bounces import provider-bounces.csv --dry-run
    """
    reports = read_reports(path)  # a bad path fails before the database is opened
    workspace = state.workspace
    counts = record_reports(state.store, reports, state.tokens.secret, workspace.bounces.soft_limit, dry_run)
    click.echo(counts.summary())
    if dry_run:
        click.echo("Dry run: nothing was saved.", err=True)
