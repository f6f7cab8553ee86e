"""`campaign archive`: the public archive of the newsletters, as a folder of static files."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.context import State, pass_state


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The archive's folder, replaced whole. Default: out/archive in the workspace.")
@click.option("--check", is_flag=True,
              help="Check every page's HTML, links and images, the feed and the sitemap first; on a problem, "
                   "leave the old archive in place and exit 1.")
@pass_state
def archive(state: State, out: Path | None, check: bool) -> None:
    """Write the public archive: a page for each sent campaign, an index, an Atom feed, a sitemap and
    the articles' images, to publish at [archive] base_url. The pages show what was sent, with no
    reader's name, address or links in them, and nothing that tracks; a campaign with
    `archive = false` is left out, one with `archive = true` is in even unsent. `campaign serve`
    serves the folder under /archive/.

    \b
    Examples:
      campaign archive --check
      campaign archive --out /srv/www/newsletter
      campaign send-due && campaign archive && rsync -a --delete out/archive/ web:/srv/www/newsletter/
    """
    from pipeline.web.archive import write_archive

    written = write_archive(state.store, state.workspace, out, check,
                            note=lambda text: click.echo(f"campaign: note: {text}", err=True))
    click.echo(str(written.folder))
    checked = ", checked" if check else ""
    click.echo(f"archive: {written.pages} page(s), {written.images} image(s){checked}", err=True)
