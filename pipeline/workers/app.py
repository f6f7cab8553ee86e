"""The Celery application: one configuration for the processes that hand batches out and the
workers that take them.

Celery's defaults suit jobs that may be lost or run twice; ours may be run twice but not lost:

- task_acks_late + task_reject_on_worker_lost: a batch is acknowledged when it is done, and a
  worker that dies with it gives it back (on Redis, after visibility_timeout);
- worker_prefetch_multiplier=1: a process holds one batch at a time, so a slow or dead worker
  sits on no other work;
- no ETA or countdown: the tick hands rows out when they fall due (on Redis, ETA tasks wait in
  the unacked set and come back every visibility_timeout);
- no result backend: outcomes are in the deliveries table.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from pipeline.workers import TASK

if TYPE_CHECKING:
    from celery import Celery

QUEUE = "campaign"


@lru_cache(maxsize=4)
def make_app(broker: str, visibility_timeout: int) -> Celery:
    from celery import Celery

    app = Celery("campaign", broker=broker, set_as_current=False)
    transport: dict[str, object] = {}
    if broker.startswith(("redis://", "rediss://")):
        transport["visibility_timeout"] = visibility_timeout
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,  # a batch that failed gave its rows back; the tick hands them out
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        task_routes={TASK: {"queue": QUEUE}},
        # A batch gives itself back at half of this (workers.task); a task stuck past it is ended,
        # and its rows are recovered as a dead worker's.
        task_time_limit=visibility_timeout,
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a broker restart is waited out, not a reason to exit
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app
