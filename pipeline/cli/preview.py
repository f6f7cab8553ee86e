"""`campaign preview`: the email in a live-reloading local web page, or one screenshot of it."""

from __future__ import annotations

import threading
import webbrowser
from pathlib import Path

import click

from pipeline.audience.recipients import SAMPLE
from pipeline.cli.context import State, pass_state
from pipeline.files import write_atomic
from pipeline.web.preview import Preview, campaign_recipients, find_recipient
from pipeline.web.preview_server import PreviewServer

DEFAULT_WIDTH = 600


@click.command()
@click.argument("slug")
@click.option("--port", type=click.IntRange(0, 65535), default=8025, show_default=True,
              help="Port to listen on; 0 picks a free one.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback shows your drafts to your network.")
@click.option("--open", "open_browser", is_flag=True, help="Open the preview in your web browser.")
@click.option("--as", "as_", metavar="EMAIL|sample", default=SAMPLE, show_default=True,
              help="Whose copy to show first.")
@click.option("--screenshot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a PNG of the email through headless Chromium and exit; no server.")
@click.option("--width", type=click.IntRange(100, 4000), default=None, metavar="PX",
              help=f"With --screenshot: the width in CSS pixels.  [default: {DEFAULT_WIDTH}]")
@pass_state
def preview(state: State, slug: str, port: int, host: str, open_browser: bool, as_: str,
            screenshot: Path | None, width: int | None) -> None:
    """Preview SLUG in your browser: desktop and mobile widths, dark mode, the text part,
    headers, raw MIME and the lint report. Saving a template, the campaign's settings, its
    article or a picture beside it reloads the page by itself.

    \b
    Examples:
      campaign preview back-pain --open
      campaign preview back-pain --screenshot phone.png --width 375
    """
    if width is not None and screenshot is None:
        raise click.UsageError("--width goes with --screenshot")
    ws = state.workspace
    view = Preview(ws, slug, lambda: campaign_recipients(state.store, ws, slug, as_))
    if screenshot is not None:
        write_atomic(screenshot, view.screenshot(as_, width or DEFAULT_WIDTH))
        click.echo(str(screenshot))
        return
    server = PreviewServer(view, host, port, recipient=find_recipient(view.state.recipients, as_))
    click.echo(f"Previewing {slug} at {server.url} (Ctrl-C to stop)", err=True)
    if open_browser:
        # The socket already listens, so the browser's request waits for the server rather than failing;
        # a thread, because a text-mode browser would hold the terminal until it quits.
        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    click.echo("Preview stopped.", err=True)
