"""The `campaign` command: thin Click commands over the library; errors rendered here, once."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline import __version__
from pipeline.cli.context import CampaignGroup, State


@click.group(cls=CampaignGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--workspace", "-w", type=click.Path(file_okay=False, path_type=Path), envvar="CAMPAIGN_WORKSPACE",
              default=".", show_default="current directory", help="The workspace folder (holds campaign.toml).")
@click.option("--db", envvar="CAMPAIGN_DB", default=None, metavar="URL",
              help="SQLAlchemy database URL. Default: sqlite:///campaign.db in the workspace.")
@click.option("--transport", envvar="CAMPAIGN_TRANSPORT", default=None, metavar="URL",
              help="maildir:PATH, smtp://[user@]host[:port] or smtps://... Default: maildir:outbox in the workspace.")
@click.version_option(__version__, prog_name="campaign")
@click.pass_context
def cli(ctx: click.Context, workspace: Path, db: str | None, transport: str | None) -> None:
    """Turn articles into educational newsletters and send them to the right subscribers.

    \b
    Start with:
      campaign init clinic && cd clinic
      campaign render back-pain
    """
    ctx.obj = State(workspace, db, transport)


def main() -> None:
    cli(prog_name="campaign")


from pipeline.cli import audience, bounces, content, preview, schedule, sending, serve  # noqa: E402,F401  (registers the commands)
