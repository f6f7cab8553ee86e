"""Scale-out: sends handed in batches to `campaign worker` processes on any number of machines.

With `[workers] broker` set, `campaign send` and the tick snapshot a send as always, then hand its
due deliveries to the broker in batches of ids (workers.fanout); `campaign worker` processes take
them and send each batch with the same loop a send in its own process uses (workers.task). The
broker is only a transport: the deliveries table stays the truth, so a task lost, redelivered or
run twice never sends a message twice.

This module imports nothing heavy: the tick and `send` ask it whether a workspace fans out
before anything loads Celery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.db.engine import Store
    from pipeline.settings.workspace import Workspace

TASK = "campaign.send_batch"


def fans_out(workspace: Workspace) -> bool:
    return workspace.workers.broker is not None


def check_database(store: Store) -> None:
    """Workers on other machines share the database: a SQLite file cannot be shared."""
    if store.engine.dialect.name != "postgresql":
        raise ConfigError("[workers] broker needs a PostgreSQL database (--db postgresql+psycopg://...): workers "
                          "on other machines cannot share a SQLite file; unset the broker to send from here")
