"""[workers] settings, what is refused, and what a send without a broker never loads."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.delivery.transports import (
    PermanentFailure,
    TemporaryFailure,
    UncertainDelivery,
)
from pipeline.errors import ConfigError
from pipeline.settings.workspace import Workers, load_workspace
from pipeline.workers.pool import Pool
from tests.conftest import Campaign
from tests.workers.conftest import RedisServer

SQLITE_REFUSED = ("campaign: error: [workers] broker needs a PostgreSQL database (--db postgresql+psycopg://...): "
                  "workers on other machines cannot share a SQLite file; unset the broker to send from here\n")


def test_workers_settings_default_to_sending_here(workspace_dir: Path) -> None:
    assert load_workspace(workspace_dir).workers == Workers(broker=None, batch=500, visibility_timeout=900, window=16)


def test_workers_settings_come_from_the_file_or_the_environment(workspace_dir: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with (workspace_dir / "campaign.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[workers]\nbroker = "redis://10.0.0.5:6379/0"\nbatch = 200\n')
    monkeypatch.setenv("CAMPAIGN_WORKERS_VISIBILITY_TIMEOUT", "1800")
    assert load_workspace(workspace_dir).workers == Workers("redis://10.0.0.5:6379/0", 200, 1800, 16)
    monkeypatch.setenv("CAMPAIGN_WORKERS_BROKER", "amqp://rabbit.internal//")
    assert load_workspace(workspace_dir).workers.broker == "amqp://rabbit.internal//"


@pytest.mark.parametrize(("key", "value", "message"), [
    ("BROKER", "10.0.0.5:6379", "[workers] broker): '10.0.0.5:6379' is not a broker URL like redis://127.0.0.1:6379/0"),
    ("BATCH", "0", "[workers] batch): 0 is not a number of deliveries from 1 to 100,000"),
    ("VISIBILITY_TIMEOUT", "soon", "[workers] visibility_timeout): 'soon' is not a number of seconds"),
    ("WINDOW", "-1", "[workers] window): '-1' is not a number of batches"),
])
def test_bad_workers_settings_name_their_key(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch, key: str,
                                             value: str, message: str) -> None:
    """The variable, the file and key it stands for, and what is wrong with its value."""
    monkeypatch.setenv(f"CAMPAIGN_WORKERS_{key}", value)
    named = f"CAMPAIGN_WORKERS_{key} (for {workspace_dir / 'campaign.toml'}: {message}"
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_workspace(workspace_dir)


def test_a_broker_with_sqlite_is_refused_in_one_line(campaign: Campaign, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_WORKERS_BROKER", "redis://127.0.0.1:1/0")
    for args in (["send", "back-pain", "--yes"], ["worker"], ["scheduler", "--once"]):
        done = campaign(*args)
        assert (done.exit_code, done.stderr) == (1, SQLITE_REFUSED), args
    assert campaign("schedule", "back-pain", "--at", "2026-12-01 09:00", "--now", "2026-11-23T12:00:00Z").exit_code == 0
    due = campaign("send-due", "--now", "2026-12-01T17:00:00Z")
    assert (due.exit_code, due.stderr) == (1, SQLITE_REFUSED)


def test_workers_refuse_the_send_only_options(campaign: Campaign, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_WORKERS_BROKER", "redis://127.0.0.1:1/0")
    monkeypatch.setattr("pipeline.workers.check_database", lambda store: None)
    done = campaign("send", "back-pain", "--yes", "--rate", "5/s", "--limit", "3")
    assert done.exit_code == 2
    assert "--limit, --rate apply to sending from here; with [workers] broker, workers send at [sending] rate" in \
        done.stderr


def test_sending_without_a_broker_loads_no_celery_or_redis(workspace_dir: Path) -> None:
    probe = ("import json, sys\n"
             "from pipeline.cli import cli\n"
             f"args = ['--workspace', {str(workspace_dir)!r}]\n"
             "for command in (['send', 'back-pain', '--yes'], ['send-due'], ['status']):\n"
             "    try:\n"
             "        cli(args + command, prog_name='campaign')\n"
             "    except SystemExit:\n"
             "        pass\n"
             "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('celery', 'kombu', 'redis'))))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


class Recorded:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail
        self.closed = False

    def send(self, envelope_from: str, recipient: str, message: bytes) -> str:
        if self.fail is not None:
            raise self.fail
        return "250 OK"

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("failure", "kept"), [
    (None, True),
    (PermanentFailure("550 no such user"), True),
    (TemporaryFailure("451 later"), True),
    (TemporaryFailure("421 closing", reconnect=True), False),
    (UncertainDelivery("no answer to the message"), False),
])
def test_the_pool_keeps_a_connection_only_while_it_is_sound(failure: BaseException | None, kept: bool) -> None:
    made: list[Recorded] = []
    pool = Pool(lambda: made.append(Recorded(failure)) or made[-1])  # type: ignore[func-returns-value]
    lent = pool()
    try:
        lent.send("a@example.com", "b@example.com", b"x")
    except (PermanentFailure, TemporaryFailure, UncertainDelivery):
        pass
    lent.close()
    assert made[0].closed is not kept
    pool()
    assert len(made) == (1 if kept else 2)  # reused, or a new session


def test_the_pool_does_not_reuse_a_connection_idle_too_long() -> None:
    made: list[Recorded] = []
    pool = Pool(lambda: made.append(Recorded()) or made[-1], max_idle=0.05)  # type: ignore[func-returns-value]
    pool().close()
    time.sleep(0.1)
    pool().close()
    assert len(made) == 2 and made[0].closed
    pool.close()
    assert made[1].closed


def test_the_shared_rate_paces_every_process_together(redis_server: RedisServer) -> None:
    from pipeline.workers.rate import SharedRate

    one, other = SharedRate(50, redis_server.url), SharedRate(50, redis_server.url)  # two workers' limits
    slots = sorted(limit.next_slot() for _ in range(30) for limit in (one, other))
    assert slots[-1] - slots[0] == pytest.approx(59 / 50, abs=0.05)  # 60 slots 20 ms apart, whoever took them
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) > 0.015


def test_a_worker_without_a_broker_says_where_to_set_one(campaign: Campaign) -> None:
    done = campaign("worker")
    assert done.exit_code == 1
    assert done.stderr == (f"campaign: error: {campaign.root / 'campaign.toml'}: campaign worker needs [workers] "
                           "broker in campaign.toml (or CAMPAIGN_WORKERS_BROKER), like redis://127.0.0.1:6379/0\n")


def test_a_worker_never_makes_up_a_secret(workspace_dir: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_WORKERS_BROKER", "redis://127.0.0.1:1/0")
    monkeypatch.delenv("CAMPAIGN_SECRET", raising=False)
    (workspace_dir / ".campaign-secret").unlink()
    done = Campaign(workspace_dir, pg_url)("worker")
    assert done.exit_code == 1
    assert "no workspace secret: copy .campaign-secret from the host that queues the sends" in done.stderr
    assert not (workspace_dir / ".campaign-secret").exists()
