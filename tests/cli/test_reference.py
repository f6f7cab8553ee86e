from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from pipeline.cli.reference import REGENERATE, reference

ROOT = Path(__file__).resolve().parents[2]
CLI_MD = ROOT / "docs" / "cli.md"


def test_docs_cli_md_is_what_the_commands_say_now() -> None:
    assert CLI_MD.is_file(), f"docs/cli.md is missing: run `{REGENERATE}`"
    assert CLI_MD.read_text(encoding="utf-8") == reference(), (
        f"docs/cli.md differs from the commands' --help: run `{REGENERATE}` from the repository root")


def test_the_module_prints_the_reference() -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline.cli.reference"], cwd=ROOT, capture_output=True,
                          text=True, encoding="utf-8", timeout=60, check=True)
    assert done.stdout == reference()


class Lazy(click.Group):
    """A group that makes its commands only when asked for them, as a lazily loading CLI does."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return ["later", "sub"]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "later":
            return click.Command("later", help="Made on demand.",
                                 params=[click.Option(["--count"], type=int, default=3, show_default=True,
                                                      help="How many.")])
        inner = click.Group("sub", help="A nested group.")
        inner.add_command(click.Command("deep", help="Two levels down.\n\n\b\nExample:\n  tool sub deep"))
        return inner


def test_commands_made_on_demand_and_nested_groups_are_walked_in_order() -> None:
    text = reference(Lazy("tool", help="A tool."), prog="tool")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## tool", "## tool later", "## tool sub", "## tool sub deep"]
    assert "- [`tool sub deep`](#tool-sub-deep)" in text
    assert "Usage: tool later [OPTIONS]" in text
    assert "--count INTEGER  How many.  [default: 3]" in text
    assert "Two levels down.\n\n```text\nExample:\n  tool sub deep\n```" in text
