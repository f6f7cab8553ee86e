from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pipeline.cli import cli
from pipeline.settings import Workspace, load_workspace
from pipeline.workspace import init_workspace

FIXTURES = Path(__file__).parent / "fixtures"
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

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(cli, ["--workspace", str(self.root), *args], input=input,
                                  catch_exceptions=False)


@pytest.fixture
def campaign(workspace_dir: Path) -> Campaign:
    return Campaign(workspace_dir)
