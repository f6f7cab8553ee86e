"""Commands that run sends on time: `schedule`, `unschedule`, `list`, `scheduler` (`send-due`: cli/due.py)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from pipeline.cli.context import NOW_OPTION, State, parse_now, pass_state
from pipeline.clock import human, utcnow
from pipeline.content.build import build_campaign
from pipeline.delivery.sending import connection_factory
from pipeline.errors import SendError
from pipeline.redact import redact_url
from pipeline.settings.campaign import load_campaign
from pipeline.timing.daemon import run_scheduler
from pipeline.timing.overview import overview
from pipeline.timing.recurring import start, stop
from pipeline.timing.schedule import schedule, unschedule
from pipeline.timing.tick import DEFAULT_BUDGET, TickReport, tick
from pipeline.workers import check_database, fans_out


@click.command("schedule")
@click.argument("slug")
@click.option("--at", "at", metavar='"YYYY-MM-DD HH:MM"', help="When to send (a recurring campaign needs none).")
@click.option("--tz", "tz", metavar="ZONE", help="Time zone of --at. Default: campaign.toml's, else this machine's.")
@click.option("--local-time", is_flag=True, help="Each recipient gets it at that wall time in their own zone.")
@NOW_OPTION
@pass_state
def schedule_(state: State, slug: str, at: str | None, tz: str | None, local_time: bool, now: str | None) -> None:
    """Schedule SLUG, or start a recurring campaign; `campaign send-due` (cron) or
    `campaign scheduler` sends it when it is due.

    \b
    Examples:
      campaign schedule back-pain --at "2026-12-01 09:00" --local-time
      campaign schedule monthly-digest
    """
    ws = state.workspace
    clock = parse_now(now)
    settings = load_campaign(ws, slug)
    if at is None:
        if not settings.recurrence:
            raise click.UsageError(f"{slug} is not recurring; give --at \"YYYY-MM-DD HH:MM\"")
        running = start(state.store, ws, slug, clock())
        click.echo(f"{slug}\trecurring\t{human(running.next_occurrence())}")
        click.echo(f"Recurring {settings.recurrence!r}; next occurrence {human(running.next_occurrence())}.", err=True)
        return
    built = build_campaign(ws, slug).require_clean()
    done = schedule(state.store, ws, slug, built.content.subject, settings.segment or "", at, tz,
                    local_time, clock())
    click.echo(f"{slug}\tscheduled\t{human(done.first_instant)}")
    if done.note:
        click.echo(done.note, err=True)
    if local_time:
        click.echo(f"Each recipient gets it at {at} in their own time zone (readers without one: {done.zone}); "
                   f"the first copies leave at {human(done.first_instant)}, when UTC+14 reaches {at}.", err=True)


@click.command("unschedule")
@click.argument("slug")
@pass_state
def unschedule_(state: State, slug: str) -> None:
    """Remove SLUG's schedule (or stop a recurring campaign); nothing already sent changes.

    \b
    Example:
      campaign unschedule back-pain
    """
    if load_campaign(state.workspace, slug).recurrence:
        stop(state.store, slug)
    else:
        unschedule(state.store, slug, utcnow())
    click.echo(f"{slug}\tunscheduled")


@click.command("list")
@NOW_OPTION
@pass_state
def list_campaigns(state: State, now: str | None) -> None:
    """Campaigns: state, next due instant, sent of total, and subject (tab-separated).

    \b
    Example:
      campaign list
    """
    for line in overview(state.store, state.workspace, parse_now(now)()):
        click.echo(f"{line.slug}\t{line.state}\t{human(line.due)}\t{line.sent}/{line.total}\t{line.subject}")


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Run one tick and exit.")
@click.option("--max-seconds", type=click.FloatRange(min=1), default=DEFAULT_BUDGET, show_default=True,
              help="Longest a tick starts new messages.")
@NOW_OPTION
@pass_state
def scheduler(state: State, once: bool, max_seconds: float, now: str | None) -> None:
    """Run the send-due tick every minute until SIGTERM or Ctrl-C, which stop it after the
    messages in flight. Logs to stderr.

    \b
    Example (docs/scheduling.md has a systemd unit):
      campaign scheduler
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    log = logging.getLogger("campaign.scheduler")
    ws = state.workspace
    description, connect = connection_factory(ws, state.transport_url)
    if fans_out(ws):
        check_database(state.store)  # refused now, not once a minute
        description = f"the workers of {redact_url(ws.workers.broker or '')}"
    clock = parse_now(now)
    halt = threading.Event()

    def tick_once(stop: threading.Event) -> TickReport:
        report = tick(state.store, ws, connect, clock, max_seconds=max_seconds, stop=stop)
        for outcome in report.busy():
            (log.error if outcome.error else log.info)("%s: %s", outcome.label, outcome.error or outcome.summary())
        return report

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping after the messages in flight", signal.Signals(signum).name)
        halt.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("sending via %s", description)
    if once:
        failed = sum(1 for outcome in tick_once(halt).outcomes.values() if outcome.error)
        if failed:
            raise SendError(f"{failed} campaign(s) failed in this tick; the log above says why")
        return
    run_scheduler(tick_once, halt)

