"""The command table: every command loads on first use, and `--help` loads none of them."""

from __future__ import annotations

import json
import subprocess
import sys

import click
from click.testing import CliRunner

from pipeline.cli import COMMANDS, cli


def test_every_command_in_the_table_loads_under_its_name_with_the_summary_it_lists() -> None:
    ctx = click.Context(cli)
    for name, (_, summary) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=300) == summary, f"update the summary of {name!r} in COMMANDS"


def test_help_lists_every_command_in_order() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.split("Commands:\n", 1)[1].splitlines() if line.strip()]
    assert listed == list(COMMANDS)


def test_help_and_an_unknown_command_import_no_command_module_and_no_heavy_library() -> None:
    probe = ("import json, sys\n"
             "from pipeline.cli import cli\n"
             "for args in (['--help'], ['no-such-command']):\n"
             "    try:\n"
             "        cli(args, prog_name='campaign')\n"
             "    except SystemExit:\n"
             "        pass\n"
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('pipeline', 'sqlalchemy', 'jinja2', "
             "'lxml', 'trafilatura', 'mjml')))))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == ["pipeline", "pipeline.cli", "pipeline.cli.context", "pipeline.errors"]
