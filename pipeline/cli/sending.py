"""Commands that send: `send`, `test-send` and `status`."""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime

import click

from pipeline.cli.context import State, pass_state
from pipeline.clock import human, utcnow
from pipeline.delivery.proofs import test_send
from pipeline.delivery.runs import RateLimit, RetryPolicy, SendOptions, SendReport
from pipeline.delivery.sending import (
    RETRY_WINDOW,
    Plan,
    RunResult,
    begin_send,
    connection_factory,
    pause,
    plan,
    resume,
    run_with_retries,
)
from pipeline.delivery.sending import restart_content as restart_content_of
from pipeline.delivery.status import status
from pipeline.errors import Interrupted, SendError
from pipeline.redact import redact_url


class _Progress:
    """A progress bar on stderr with the rate and the time left."""

    def __init__(self, total: int) -> None:
        self.bar = click.progressbar(length=max(total, 1), label="Sending", show_eta=True, show_pos=True,
                                     file=sys.stderr)
        self.started = time.monotonic()
        self.done = 0
        self.lock = threading.Lock()
        self.live = sys.stderr.isatty()  # a log file gets the label once, not a line per message

    def __call__(self, report: SendReport) -> None:
        with self.lock:
            finished = report.sent + report.failed + report.skipped + report.unknown  # final outcomes only
            if self.live:
                rate = finished / max(time.monotonic() - self.started, 1e-6)
                self.bar.label = f"Sending {rate:,.0f}/s"
            self.bar.update(finished - self.done)
            self.done = finished


@click.command()
@click.argument("slug")
@click.option("--segment", help="Send to this saved segment or expression instead of the campaign's.")
@click.option("--dry-run", is_flag=True, help="Show who would get it; send nothing.")
@click.option("--limit", type=click.IntRange(min=1), help="Send at most N messages in this run.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--concurrency", type=click.IntRange(1, 64), help="SMTP connections at once.  [default: 4]")
@click.option("--rate", metavar="N/s|N/h", help="At most this many messages per second or hour.")
@click.option("--retry-unknown", is_flag=True, help="Send again the deliveries whose fate is unknown (also after "
                                                     "the send finished).")
@click.option("--retry-failed", is_flag=True, help="Send again the deliveries that failed (also after the send "
                                                    "finished).")
@click.option("--retry-after", type=click.FloatRange(min=0), default=60, show_default=True, metavar="SECONDS",
              help="First wait after a 4xx reply or a dropped connection (then x4 each time).")
@click.option("--retry-window", type=click.FloatRange(min=0), default=RETRY_WINDOW / 60, show_default=True,
              metavar="MINUTES", help="Stay this long to retry temporary failures; send-due finishes the rest.")
@click.option("--restart-content", is_flag=True,
              help="A started send takes the campaign as it is now; refused once anything was sent.")
@click.option("--wait", is_flag=True, help="With [workers] broker: stay, with a progress bar, until the workers are "
                                           "done (without one, send always stays).")
@pass_state
def send(state: State, slug: str, segment: str | None, dry_run: bool, limit: int | None, yes: bool,
         concurrency: int | None, rate: str | None, retry_unknown: bool, retry_failed: bool,
         retry_after: float, retry_window: float, restart_content: bool, wait: bool) -> None:
    """Send SLUG to its segment, each recipient exactly once.

    The recipients and the content are fixed when the send starts; running it again continues
    where it stopped, with the same content. Ctrl-C stops after the message in flight.

    With [workers] broker in campaign.toml (and a PostgreSQL --db), the deliveries go to
    `campaign worker` processes in batches, and send returns once they are handed out.

    \b
    Example:
      campaign send back-pain --segment '"back-pain" in tags' --yes
    """
    ws = state.workspace
    store = state.store
    workers = ws.workers.broker is not None
    if workers:
        _check_for_workers(state, limit, concurrency, rate)
    target = plan(store, ws, slug, segment)
    if target.send is not None and target.send.state == "sent" and not (retry_unknown or retry_failed):
        click.echo(f"{slug} was sent on {human(target.send.finished_at)}; nothing to do "
                   "(see --retry-unknown and --retry-failed)", err=True)
        return
    if workers:
        description, connect = f"the workers of {redact_url(ws.workers.broker or '')}", None
    else:
        description, connect = connection_factory(ws, state.transport_url)
    if restart_content:
        target = restart_content_of(store, target, utcnow())
    elif target.changed:
        click.echo(f"{ws.campaign_dir(slug)} changed since this send started; it goes on with the content it "
                   f"started with ({target.content.digest[:12]}): one send, one email. "
                   "--restart-content takes the new one while nothing has been sent.", err=True)
    subject = target.content.subject
    if dry_run:
        click.echo(f"{target.recipients}")
        click.echo(f"Would send {subject!r} to {target.recipients} recipient(s) of {target.segment.label!r} "
                   f"via {description}.", err=True)
        return
    if not yes:
        click.confirm(f"Send {subject!r} to {target.recipients} recipient(s) of {target.segment.label!r} "
                      f"via {description}?", abort=True, err=True)
    if connect is None:
        _send_by_workers(state, slug, target, description, wait, retry_unknown, retry_failed)
        return
    sending = ws.sending
    options = SendOptions(
        concurrency=concurrency or sending.concurrency,
        rate=RateLimit.parse(rate or sending.rate),
        limit=limit,
        retry=RetryPolicy(first_delay=retry_after),
    )
    row = begin_send(store, target, slug, utcnow())
    progress = _Progress(target.recipients)

    def waiting(moment: datetime) -> None:
        click.echo(f"\nWaiting to retry temporary failures at {human(moment)} (Ctrl-C leaves them to "
                   "'campaign send-due').", err=True)

    with progress.bar:
        result = run_with_retries(store, ws, row, connect, options, window=retry_window * 60,
                                  retry_unknown=retry_unknown, retry_failed=retry_failed, progress=progress,
                                  waiting=waiting)
    _report_run(slug, description, result)


def _check_for_workers(state: State, limit: int | None, concurrency: int | None, rate: str | None) -> None:
    from pipeline.workers import check_database

    check_database(state.store)
    given = [name for name, value in (("--limit", limit), ("--concurrency", concurrency), ("--rate", rate)) if value]
    if given:
        raise click.UsageError(f"{', '.join(given)} apply to sending from here; with [workers] broker, workers send "
                               "at [sending] rate with 'campaign worker --concurrency'")


def _send_by_workers(state: State, slug: str, target: Plan, description: str, wait: bool, retry_unknown: bool,
                     retry_failed: bool) -> None:
    from pipeline.workers.fanout import hand_out, together
    from pipeline.workers.fanout import wait as follow

    store, ws = state.store, state.workspace
    sends = together(store, begin_send(store, target, slug, utcnow()))
    result = hand_out(store, ws, sends, retry_unknown=retry_unknown, retry_failed=retry_failed)
    if not wait:
        click.echo("\t".join(f"{name} {result.counts[name]}" for name in result.counts))
        click.echo(f"{result.batches} batch(es) of {slug} went to {description}; {result.remaining} delivery(ies) to "
                   f"go. 'campaign status {slug}' shows how far they are, 'campaign send {slug} --wait' follows "
                   "them.", err=True)
        return
    progress = _Progress(target.recipients)
    requeued = result.requeued
    try:
        with progress.bar:
            result = follow(store, ws, sends, progress, result.base)
    except KeyboardInterrupt:
        click.echo(f"\nStopped waiting; the workers go on sending {slug} ('campaign status {slug}').", err=True)
        return
    result.requeued = requeued
    _report_run(slug, description, result)


def _report_run(slug: str, description: str, result: RunResult) -> None:
    report, totals = result.report, result.counts
    click.echo("\t".join(f"{name} {totals[name]}" for name in totals))
    if result.requeued:
        click.echo(f"{result.requeued} delivery(ies) were queued again as asked.", err=True)
    if report.bounced:
        click.echo(f"{report.bounced} address(es) bounced and are now suppressed.", err=True)
    if totals["unknown"]:
        click.echo(f"{totals['unknown']} message(s) may or may not have arrived (unknown): a sender stopped while "
                   f"sending them. Check, then 'campaign send {slug} --retry-unknown' sends them again.", err=True)
    if report.paused:
        click.echo(f"{slug} is paused; 'campaign resume {slug}' continues it.", err=True)
    elif report.limited:
        click.echo(f"Stopped. 'campaign send {slug}' continues where this run stopped.", err=True)
    elif result.remaining and not report.stopped:
        when = "now" if result.next_due is None or result.next_due <= utcnow() else f"at {human(result.next_due)}"
        click.echo(f"{result.remaining} delivery(ies) wait for a retry, the next {when}; 'campaign send-due' "
                   f"(cron) or 'campaign scheduler' sends them, or 'campaign send {slug}' again.", err=True)
    elif result.done:
        click.echo(f"{slug} is sent, via {description}.", err=True)
    if report.error:
        raise SendError(report.error)
    if report.stopped:
        raise Interrupted(f"'campaign send {slug}' continues where this run stopped")


@click.command("test-send")
@click.argument("slug")
@click.option("--to", "addresses", multiple=True, required=True, help="Recipient (repeatable).")
@pass_state
def test_send_(state: State, slug: str, addresses: tuple[str, ...]) -> None:
    """Send "[TEST]" copies of SLUG to the given addresses; the campaign's deliveries are untouched.

    Each address gets a line with the server's answer; the exit status is 1 if any was refused.

    \b
    Example:
      campaign test-send back-pain --to me@clinic.example --to colleague@clinic.example
    """
    description, connect = connection_factory(state.workspace, state.transport_url)
    proofs = test_send(state.store, state.workspace, slug, addresses, connect)
    for proof in proofs:
        click.echo(f"{proof.address}\t{proof.reply if proof.delivered else 'refused: ' + proof.reply}")
    refused = sum(not proof.delivered for proof in proofs)
    if refused:
        raise SendError(f"{refused} of {len(proofs)} test message(s) were refused (via {description})")
    click.echo(f"Sent {len(proofs)} test message(s) via {description}.", err=True)


@click.command("status")
@click.argument("slug", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
def status_(state: State, slug: str | None, as_json: bool) -> None:
    """Where each send stands: its subject and content hash, counts per state, bounces and
    complaints, times, its history (started, paused, reopened for a retry), and failures with
    the server's replies.

    Sends handed to `campaign worker` processes show a line per worker (host:pid): what it
    sent, how fast, and how much in the last minute.

    \b
    Example:
      campaign status back-pain
    """
    found = status(state.store, slug)
    if as_json:
        click.echo(json.dumps(found, indent=2, ensure_ascii=False, default=datetime.isoformat))
        return
    for entry in found:
        name = entry["campaign"] if not entry["occurrence"] else f"{entry['campaign']} ({entry['occurrence']})"
        click.echo(f"{name}: {entry['state']}")
        content = f"  (content {entry['content']})" if entry["content"] else ""
        click.echo(f"  subject: {entry['subject']}{content}")
        counts = entry["counts"]
        assert isinstance(counts, dict)
        click.echo("  " + "  ".join(f"{k} {v}" for k, v in counts.items()))
        bounced = entry["bounces"]
        assert isinstance(bounced, dict)
        click.echo(f"  bounces: hard {bounced['hard']}  soft {bounced['soft']}  complaints {bounced['complaint']}")
        click.echo(f"  started {human(entry['started_at'])}  finished {human(entry['finished_at'])}")
        senders = entry["workers"]
        assert isinstance(senders, list)
        for sender in senders:
            if sender["campaign_worker"]:
                pace = f"{sender['per_second']:,.1f}/s" if sender["per_second"] is not None else "-/s"
                click.echo(f"  worker {sender['worker']}: sent {sender['sent']} at {pace}, "
                           f"{sender['last_minute']} in the last minute")
        events = entry["history"]
        assert isinstance(events, list)
        for event in events:
            click.echo(f"  {human(event['at'])}  {event['event']}" + (f": {event['detail']}" if event["detail"] else ""))
        failures = entry["failures"]
        assert isinstance(failures, list)
        for failure in failures:
            click.echo(f"  {failure['state']}: {failure['email']}: {failure['reply']}")


@click.command("pause")
@click.argument("slug")
@pass_state
def pause_(state: State, slug: str) -> None:
    """Pause a send or a schedule; senders stop after the message in flight.

    \b
    Example:
      campaign pause back-pain
    """
    pause(state.store, slug, utcnow())
    click.echo(f"{slug}\tpaused")


@click.command("resume")
@click.argument("slug")
@pass_state
def resume_(state: State, slug: str) -> None:
    """Resume a paused send or schedule; nobody gets a second copy.

    \b
    Example:
      campaign resume back-pain
    """
    row = resume(state.store, slug, utcnow())
    click.echo(f"{slug}\t{row.state}")
    if row.state == "sending":
        click.echo(f"'campaign send {slug}' (or the next 'campaign send-due') goes on sending it.", err=True)
