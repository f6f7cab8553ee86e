"""`campaign worker`: send the batches `campaign send` and the tick hand to the broker."""

from __future__ import annotations

import logging
import sys

import click

from pipeline.cli.context import State, pass_state


@click.command("worker")
@click.option("--concurrency", type=click.IntRange(1, 64),
              help="SMTP connections of each process.  [default: [sending] concurrency]")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes on this machine, each sending one batch at a time.")
@click.option("--quiet", is_flag=True, help="Log warnings and errors only.")
@pass_state
def worker(state: State, concurrency: int | None, processes: int, quiet: bool) -> None:
    """Send the batches of deliveries that `campaign send` and the tick hand to the broker
    ([workers] broker), until SIGTERM or Ctrl-C. Run it on as many machines as you like, with
    the same workspace settings and secret, the same --db (PostgreSQL) and --transport.

    `[sending] rate` holds for all workers together; each process sends over --concurrency
    connections. SIGTERM stops after the messages in flight.

    \b
    Example (docs/workers.md has a systemd unit):
      campaign --db postgresql+psycopg://campaign@db/campaign worker --processes 2 --concurrency 4
    """
    from pipeline.db.engine import default_url
    from pipeline.workers.process import run_worker

    level = logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ws = state.workspace
    status = run_worker(ws, state.db_url or default_url(ws.root), state.transport_url,
                        concurrency=concurrency or ws.sending.concurrency, processes=processes,
                        loglevel="WARNING" if quiet else "INFO")
    if status:
        sys.exit(status)
