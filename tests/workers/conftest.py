"""Real parts for the scale-out tests: redis-server on a free loopback port, a PostgreSQL schema
of the test's own, the aiosmtpd sink, and `campaign worker` processes.

Without redis-server, PostgreSQL (CAMPAIGN_TEST_POSTGRES_URL) or Celery these tests skip and say
which is missing; with CAMPAIGN_REQUIRE_REDIS=1 (as .ci/run sets) they fail instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result

from pipeline.db.engine import Store
from pipeline.db.schema import deliveries, subscribers
from pipeline.workers.app import QUEUE
from tests.conftest import POSTGRES_URL, Campaign, postgres_schema
from tests.smtp_server import SmtpTestServer

REQUIRE_REDIS = os.environ.get("CAMPAIGN_REQUIRE_REDIS") == "1"
REDIS_SERVER = shutil.which("redis-server")


def _missing() -> str | None:
    if REDIS_SERVER is None:
        return "redis-server is not installed (apt-get install redis-server)"
    if POSTGRES_URL is None:
        return "CAMPAIGN_TEST_POSTGRES_URL is not set (workers need PostgreSQL)"
    if importlib.util.find_spec("celery") is None:
        return "Celery is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="session")
def scale_out_parts() -> None:
    """The skip (or, when required, the failure) of tests that need the real parts."""
    missing = _missing()
    if missing is None:
        return
    if REQUIRE_REDIS:
        pytest.fail(f"CAMPAIGN_REQUIRE_REDIS=1 but {missing}", pytrace=False)
    pytest.skip(missing)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """redis-server on loopback without persistence: a restart loses everything it held."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def redis_server(scale_out_parts: None, tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder).start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(scale_out_parts: None) -> Iterator[str]:
    with postgres_schema("w") as url:
        yield url


class Cluster:
    """A workspace on PostgreSQL with a broker: the CLI here, `campaign worker` processes beside it."""

    def __init__(self, root: Path, db_url: str, redis: RedisServer, smtp: SmtpTestServer, logs: Path) -> None:
        self.root = root
        self.db_url = db_url
        self.redis = redis
        self.smtp = smtp
        self.logs = logs
        self.campaign = Campaign(root, db_url)
        self.workers: list[subprocess.Popen[str]] = []
        self.store = Store(db_url)

    def __call__(self, *args: str) -> Result:
        return self.campaign(*args)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pipeline", "--workspace", str(self.root), "--db", self.db_url,
                "--transport", self.smtp.url, *args]

    def people(self, count: int) -> list[str]:
        addresses = [f"patient{n}@example.com" for n in range(count)]
        source = self.root / "people.csv"
        source.write_text("email,first_name,tags\n" + "".join(f"{a},Pat{n},back-pain\n" for n, a in
                                                               enumerate(addresses)), encoding="utf-8")
        done = self.campaign("subscribers", "import", str(source))
        assert done.exit_code == 0, done.stderr
        return addresses

    def start_worker(self, processes: int = 1, concurrency: int = 2) -> subprocess.Popen[str]:
        log = (self.logs / f"worker{len(self.workers)}.log").open("w", encoding="utf-8")
        process = subprocess.Popen(self.command("worker", "--processes", str(processes), "--concurrency",
                                                str(concurrency)),
                                   stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.workers.append(process)
        return process

    def kill(self, process: subprocess.Popen[str]) -> None:
        """kill -9 the worker and the processes it forked."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)

    def tick(self) -> Result:
        """`campaign send-due`, in this process."""
        return self.campaign("--transport", self.smtp.url, "send-due")

    def tick_process(self) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command("send-due"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def states(self) -> dict[str, str]:
        with self.store.reading() as conn:
            rows = conn.execute(sa.select(subscribers.c.email_key, deliveries.c.state).select_from(
                deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id))).all()
        return dict(rows)

    def held(self, prefix: str) -> int:
        """Rows held now by holders whose name starts with prefix."""
        with self.store.reading() as conn:
            return int(conn.execute(sa.select(sa.func.count()).where(
                deliveries.c.lease_until.is_not(None), deliveries.c.worker.like(prefix + "%"))).scalar() or 0)

    def wait_for(self, condition: object, timeout: float, what: str, tick_every: float | None = None) -> None:
        """Wait until condition() holds, running the tick every tick_every seconds meanwhile."""
        deadline = time.monotonic() + timeout
        ticked = time.monotonic()
        while not condition():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; states: {self.states_summary()}; "
                                     f"logs:\n{self.log_tail()}")
            if tick_every is not None and time.monotonic() - ticked >= tick_every:
                self.tick()
                ticked = time.monotonic()
            time.sleep(0.05)

    def redis_queue_length(self) -> int:
        """Batches waiting in the broker or taken and not yet acknowledged."""
        import redis

        client = redis.Redis.from_url(self.redis.url)
        try:
            return int(client.llen(QUEUE)) + int(client.zcard("unacked_index"))
        finally:
            client.close()

    def states_summary(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for state in self.states().values():
            found[state] = found.get(state, 0) + 1
        return found

    def finished(self) -> bool:
        return all(state not in ("queued", "sending") for state in self.states().values())

    def log_tail(self) -> str:
        return "\n".join(path.read_text(encoding="utf-8")[-3000:] for path in sorted(self.logs.glob("*.log")))

    def close(self) -> None:
        self.stop_workers()
        self.store.close()


@pytest.fixture
def cluster(workspace_dir: Path, pg_url: str, redis_server: RedisServer, smtp_server: SmtpTestServer,
            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """Small batches and short holds, so that faults show within seconds."""
    monkeypatch.setenv("CAMPAIGN_WORKERS_BROKER", redis_server.url)
    monkeypatch.setenv("CAMPAIGN_WORKERS_BATCH", "20")
    monkeypatch.setenv("CAMPAIGN_WORKERS_WINDOW", "4")
    monkeypatch.setenv("CAMPAIGN_WORKERS_VISIBILITY_TIMEOUT", "30")
    logs = tmp_path / "logs"
    logs.mkdir()
    found = Cluster(workspace_dir, pg_url, redis_server, smtp_server, logs)
    yield found
    found.close()
