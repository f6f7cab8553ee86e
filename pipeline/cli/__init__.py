"""The `campaign` command: thin Click commands over the library; errors rendered here, once.

Each command's module is imported only when that command runs, so a cron tick or `--help`
does not pay for the libraries that rendering, previews or imports need. The summaries below
are what `campaign --help` lists; a test keeps them equal to each command's own help.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline import __version__
from pipeline.cli.context import CampaignGroup, State

# name: ("module:attribute" under pipeline.cli, the first sentence of its help)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("content:init", "Create a workspace in DIRECTORY with an example campaign."),
    "new": ("content:new", "Create campaigns/SLUG from one or more articles, copied with the pictures beside "
                           "them that they show (images/room.jpg)."),
    "list": ("schedule:list_campaigns", "Campaigns: state, next due instant, sent of total, and subject (tab-separated)."),
    "render": ("content:render", "Render SLUG to out/SLUG/email.mjml, email.html and email.txt, then lint it."),
    "lint": ("content:lint", "Check SLUG's email: size, links, images, unsubscribe, address, subject, MJML."),
    "preview": ("preview:preview", "Preview SLUG in your browser: desktop and mobile widths, dark mode, the text part, "
                                   "headers, raw MIME and the lint report."),
    "subscribers": ("audience:subscribers", "Import, export, list and change subscribers."),
    "segments": ("audience:segments", "Saved segments and segment expressions."),
    "test-send": ("sending:test_send_", 'Send "[TEST]" copies of SLUG to the given addresses; the campaign\'s deliveries '
                                        "are untouched."),
    "send": ("sending:send", "Send SLUG to its segment, each recipient exactly once."),
    "schedule": ("schedule:schedule_", "Schedule SLUG, or start a recurring campaign; `campaign send-due` (cron) or "
                                       "`campaign scheduler` sends it when it is due."),
    "unschedule": ("schedule:unschedule_", "Remove SLUG's schedule (or stop a recurring campaign); nothing already sent "
                                           "changes."),
    "pause": ("sending:pause_", "Pause a send or a schedule; senders stop after the message in flight."),
    "resume": ("sending:resume_", "Resume a paused send or schedule; nobody gets a second copy."),
    "send-due": ("due:send_due", "Send everything that is due now and exit: the entry point for cron."),
    "scheduler": ("schedule:scheduler", "Run the send-due tick every minute until SIGTERM or Ctrl-C, which stop it "
                                        "after the messages in flight."),
    "status": ("sending:status_", "Where each send stands: its subject and content hash, counts per state, bounces "
                                  "and complaints, times, its history (started, paused, reopened for a retry), and "
                                  "failures with the server's replies."),
    "report": ("report:report", "What readers did with SLUG: opens, clicks, unsubscribes and bounces, by link, hour, "
                                "segment and time zone, and a subject test's variants; without SLUG, one line per "
                                "campaign with its rates."),
    "archive": ("archive:archive", "Write the public archive: a page for each sent campaign, an index, an Atom feed, "
                                   "a sitemap and the articles' images, to publish at [archive] base_url."),
    "serve": ("serve:serve", "Serve the pages behind every email's unsubscribe and preferences links: one-click "
                             "unsubscribe (RFC 8058), a confirmation page, and topic choices."),
    "signup-snippet": ("signup:signup_snippet", "Print an HTML signup form to paste into the practice's website; it "
                                                "posts to <base_url>/subscribe."),
    "bounces": ("bounces:bounces", "Import bounces and complaints."),
    "worker": ("worker:worker", "Send the batches of deliveries that `campaign send` and the tick hand to the broker "
                                "([workers] broker), until SIGTERM or Ctrl-C."),
}


@click.group(cls=CampaignGroup, commands_table=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
