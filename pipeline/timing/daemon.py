"""`campaign scheduler`: an APScheduler 3 process whose one job is the tick, every minute.

The schedule itself lives in the project's tables, so APScheduler keeps nothing: two
schedulers on one job store would run jobs twice, and a one-shot job is deleted when it
starts, so a crash would lose it. Here a crash loses nothing; the next tick finds what is due.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

TICK_SECONDS = 60
log = logging.getLogger("campaign.scheduler")


def run_scheduler(tick: Callable[[threading.Event], object], stop: threading.Event) -> None:
    """Tick now and then every minute until `stop` is set; return after the running tick ends.

    The job runs at most once at a time (max_instances=1); ticks missed while one ran long are
    folded into one (coalesce), however late (misfire_grace_time=None).
    """
    scheduler = BackgroundScheduler(timezone=UTC)

    def job() -> None:
        if stop.is_set():
            return
        try:
            tick(stop)
        except Exception:  # a failing tick is logged; the next minute tries again
            log.exception("tick failed")

    scheduler.add_job(job, IntervalTrigger(seconds=TICK_SECONDS, timezone=UTC), id="tick",
                      next_run_time=datetime.now(UTC), max_instances=1, coalesce=True, misfire_grace_time=None)
    scheduler.start()
    log.info("scheduler started; ticking every %d seconds", TICK_SECONDS)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        scheduler.shutdown(wait=True)  # the tick in progress finishes the message in flight, then returns
        log.info("scheduler stopped")
