from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from pipeline.cli import cli
from pipeline.db.engine import Store
from pipeline.errors import BrowserError
from pipeline.settings.scaffold import init_workspace
from pipeline.settings.workspace import Workspace, load_workspace
from pipeline.web.browser import find_chromium
from tests.smtp_server import SmtpTestServer

FIXTURES = Path(__file__).parent / "fixtures"

# A shell that starts the tests in the background (`.ci/run &`, nohup) hands them SIGINT ignored,
# and every command the tests start would inherit that; the Ctrl-C tests need what a terminal gives.
signal.signal(signal.SIGINT, signal.default_int_handler)
ARTICLES = FIXTURES / "articles"


def edit(path: Path, old: str, new: str) -> None:
    """Replace the first old with new in a workspace file, failing if old is not there."""
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def workspace_dir(tmp_path: Path) -> Path:
    root = tmp_path / "clinic"
    init_workspace(root)
    return root


@pytest.fixture
def workspace(workspace_dir: Path) -> Workspace:
    return load_workspace(workspace_dir)


class Campaign:
    """Runs the `campaign` command inside one workspace, as a user would."""

    def __init__(self, root: Path, db_url: str | None = None) -> None:
        self.root = root
        self.db_url = db_url
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        options = ["--workspace", str(self.root)] + (["--db", self.db_url] if self.db_url else [])
        return self.runner.invoke(cli, [*options, *args], input=input, catch_exceptions=False)


@pytest.fixture
def campaign(workspace_dir: Path) -> Campaign:
    return Campaign(workspace_dir)


# --- databases -------------------------------------------------------------------------------
# Storage, import and segment tests run on SQLite and, when CAMPAIGN_TEST_POSTGRES_URL names a
# server (as .ci/run arranges), on PostgreSQL too, each test in a schema of its own.
POSTGRES_URL = os.environ.get("CAMPAIGN_TEST_POSTGRES_URL")
if os.environ.get("CAMPAIGN_REQUIRE_POSTGRES") == "1" and not POSTGRES_URL:
    raise pytest.UsageError("CAMPAIGN_REQUIRE_POSTGRES=1 but CAMPAIGN_TEST_POSTGRES_URL is not set")
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    folder = tmp_path / "db"  # kept apart so tests can list tmp_path exactly
    folder.mkdir()
    if request.param == "sqlite":
        yield f"sqlite:///{folder / 'test.db'}"
        return
    with postgres_schema("t") as url:
        yield url


@contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """A URL of the test server whose tables land in a new schema, dropped when the block ends."""
    assert POSTGRES_URL is not None
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.engine.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = Store(db_url)
    yield opened
    opened.close()


@pytest.fixture
def audience(workspace_dir: Path, db_url: str) -> Iterator[Campaign]:
    """The CLI in a workspace whose database is db_url (SQLite file or a PostgreSQL schema)."""
    runner = Campaign(workspace_dir, db_url)
    yield runner


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    server = SmtpTestServer().start()
    yield server
    server.stop()


# --- Chromium ----------------------------------------------------------------------------------
# Page and screenshot tests drive a real headless Chromium. Without one they skip, saying what to
# install; with CAMPAIGN_REQUIRE_BROWSER=1 (as .ci/run sets) a missing Chromium fails them instead.
REQUIRE_BROWSER = os.environ.get("CAMPAIGN_REQUIRE_BROWSER") == "1"


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of the Chromium the browser tests run, or their skip (a failure when required)."""
    try:
        return find_chromium()
    except BrowserError as exc:
        missing = str(exc)
    if REQUIRE_BROWSER:
        pytest.fail(f"CAMPAIGN_REQUIRE_BROWSER=1 but {missing}", pytrace=False)
    pytest.skip(missing)


# For tests that need Chromium without using its path.
needs_chromium = pytest.mark.usefixtures("chromium")
