"""`campaign serve`: the unsubscribe and preferences pages, on this machine until Ctrl-C."""

from __future__ import annotations

import click

from pipeline.cli.context import State, pass_state
from pipeline.web.app import base_path, create_app
from pipeline.web.local_server import LocalServer


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. In production, keep loopback and put a reverse proxy with HTTPS in front.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on; 0 picks a free one.")
@pass_state
def serve(state: State, host: str, port: int) -> None:
    """Serve the pages behind every email's unsubscribe and preferences links: one-click
    unsubscribe (RFC 8058), a confirmation page, and topic choices. Opening a page never
    changes anything; only its buttons (and mail clients' unsubscribe buttons) do. With a
    [signup] section in campaign.toml it also serves the signup form at /subscribe, whose
    confirmation emails go out at once through --transport. It serves the archive that
    `campaign archive` last wrote to out/archive at /archive/, and at /view/TOKEN a reader's own
    copy of a newsletter (never indexed), where "View in your browser" leads for a campaign
    without an archive page. With [tracking] on, it answers tracked messages' links at /c/TOKEN
    (a redirect to the link's address) and their open pixel at /o/TOKEN, and records each.

    \b
    Examples:
      campaign serve --port 8080
      CAMPAIGN_WORKSPACE=/srv/clinic uvicorn --factory pipeline.web.app:create_app --port 8080 --no-access-log
    """
    workspace = state.workspace
    server = LocalServer(create_app(workspace, state.store, state.tokens, state.transport_url), host, port)
    click.echo(f"Serving unsubscribe and preferences pages at {server.url} (Ctrl-C to stop)", err=True)
    if base_path(workspace):
        click.echo(f"They also answer under {base_path(workspace)}/, the path of {workspace.unsubscribe_url}",
                   err=True)
    if workspace.signup.enabled:
        click.echo(f"The signup form is at {server.url}subscribe", err=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    click.echo("Stopped.", err=True)
