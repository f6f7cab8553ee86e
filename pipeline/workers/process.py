"""`campaign worker`: a Celery worker whose one task sends batches (workers.task).

Everything that can be wrong is checked before the processes fork, so a misconfigured host
says so once and exits instead of failing each batch: the database (PostgreSQL, upgraded), the
transport URL, the workspace secret (never made up here: links and Message-IDs must be signed
with the secret of the host that queued the send), and the shared rate's broker.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from pipeline.audience.tokens import SECRET_FILE
from pipeline.db.engine import Store
from pipeline.delivery.sending import connection_factory
from pipeline.errors import ConfigError
from pipeline.settings.workspace import Workspace
from pipeline.workers import TASK, check_database
from pipeline.workers.app import QUEUE, make_app
from pipeline.workers.rate import SharedRate
from pipeline.workers.task import (
    WorkerSettings,
    configure,
    on_process_end,
    send_batch,
)

log = logging.getLogger("campaign.worker")


def check(workspace: Workspace, db_url: str, transport_url: str | None) -> str:
    """The worker's setup, checked; returns the transport's description."""
    if workspace.workers.broker is None:
        raise ConfigError("campaign worker needs [workers] broker in campaign.toml (or CAMPAIGN_WORKERS_BROKER), "
                          "like redis://127.0.0.1:6379/0", where=workspace.config_path)
    store = Store(db_url)
    try:
        check_database(store)
    finally:
        store.close()  # each forked process opens its own
    if os.environ.get("CAMPAIGN_SECRET") is None and not (workspace.root / SECRET_FILE).is_file():
        raise ConfigError(f"no workspace secret: copy {SECRET_FILE} from the host that queues the sends, or set "
                          "CAMPAIGN_SECRET as there (links and Message-IDs are signed with it)",
                          where=workspace.root)
    SharedRate.shared(workspace.sending.rate, workspace.workers.broker)
    description, _ = connection_factory(workspace, transport_url)
    return description


def run_worker(workspace: Workspace, db_url: str, transport_url: str | None, *, concurrency: int,
               processes: int, loglevel: str = "INFO") -> int:
    """Run until SIGTERM or Ctrl-C; returns the exit status."""
    from celery import signals

    description = check(workspace, db_url, transport_url)
    broker = workspace.workers.broker
    assert broker is not None
    configure(WorkerSettings(Path(workspace.root), db_url, transport_url, concurrency))
    app = make_app(broker, workspace.workers.visibility_timeout)
    app.task(name=TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)(send_batch)
    signals.worker_process_shutdown.connect(lambda **_: on_process_end(), weak=False)
    log.info("worker: %d process(es) x %d connection(s), sending via %s", processes, concurrency, description)
    worker = app.Worker(concurrency=processes, pool_cls="prefork", loglevel=loglevel, queues=[QUEUE],
                        hostname=f"campaign-{os.getpid()}@{socket.gethostname()}", without_gossip=True, without_mingle=True,
                        without_heartbeat=True, quiet=True)
    worker.start()
    return int(worker.exitcode or 0)
