"""`campaign send-due`, the command cron runs every minute: light until something is due.

This module imports only what the idle check needs; the sending machinery is loaded when the
check says there may be work.
"""

from __future__ import annotations

import click

from pipeline.cli.context import NOW_OPTION, State, parse_now, pass_state
from pipeline.timing import DEFAULT_BUDGET
from pipeline.timing.idle import nothing_due


@click.command("send-due")
@click.option("--max-seconds", type=click.FloatRange(min=1), default=DEFAULT_BUDGET, show_default=True,
              help="Start no new message after this long, so the run fits a one-minute cron slot.")
@click.option("--quiet", is_flag=True, help="Print nothing unless something failed (for cron).")
@NOW_OPTION
@pass_state
def send_due(state: State, max_seconds: float, quiet: bool, now: str | None) -> None:
    """Send everything that is due now and exit: the entry point for cron. Safe to run every
    minute, overlapping with itself and with `campaign scheduler`.

    Exit status 1 only on a real failure (a broken campaign or configuration, an unreachable
    server), never because nothing was due.

    \b
    Crontab:
      * * * * *  cd /srv/clinic && campaign send-due --quiet
    """
    clock = parse_now(now)
    if nothing_due(state.workspace_dir, state.db_url, clock()):
        return
    from pipeline.delivery.sending import connection_factory
    from pipeline.timing.tick import tick

    ws = state.workspace
    _, connect = connection_factory(ws, state.transport_url)
    report = tick(state.store, ws, connect, clock, max_seconds=max_seconds)
    for outcome in report.busy():
        if not outcome.summary() or (quiet and not (outcome.error or outcome.failed or outcome.unknown)):
            continue
        click.echo(f"{outcome.label}: {outcome.summary()}")
    report.raise_failures()
