"""Commands that make newsletters: init, new, list, render, lint."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.context import State, pass_state
from pipeline.content.build import build_campaign, write_outputs
from pipeline.content.lint import Finding
from pipeline.delivery.personalise import personal_copy
from pipeline.errors import LintFailed
from pipeline.settings.scaffold import init_workspace, new_campaign


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
def init(directory: Path) -> None:
    """Create a workspace in DIRECTORY with an example campaign.

    \b
    Example:
      campaign init clinic
    """
    for path in init_workspace(directory):
        click.echo(str(path))
    click.echo(f"Workspace ready. Next: cd {directory} && campaign render back-pain", err=True)


@click.command()
@click.argument("slug")
@click.option("--article", "articles", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Article file (.md, .html or .txt). Give it more than once for a digest.")
@click.option("--subject", help="Subject line. Default: the article's title.")
@click.option("--preheader", help="Inbox preview text. Default: the first sentence of the lead.")
@click.option("--segment", help="Saved segment name or expression to send to.")
@pass_state
def new(state: State, slug: str, articles: tuple[Path, ...], subject: str | None, preheader: str | None,
        segment: str | None) -> None:
    """Create campaigns/SLUG from one or more articles, copied with the pictures beside them
    that they show (images/room.jpg).

    \b
    Example:
      campaign new back-pain --article ~/blog/back-pain.txt --subject "Can acupuncture ease back pain?"
    """
    target = new_campaign(state.workspace, slug, list(articles), subject, preheader, segment)
    click.echo(str(target))
    click.echo(f"Created. Next: campaign render {slug}", err=True)


def _report(findings: list[Finding], strict: bool, err: bool) -> None:
    for finding in findings:
        click.echo(str(finding), err=err)
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    if errors or (strict and warnings):
        raise LintFailed(f"lint found {errors} error(s) and {warnings} warning(s)")
    summary = f"lint: {warnings} warning(s)" if warnings else "lint: no problems"
    click.echo(summary, err=True)


@click.command()
@click.argument("slug")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder. Default: out/ in the workspace.")
@click.option("--as", "as_", metavar="EMAIL|sample",
              help="Also write personal.html and personal.txt filled in for one subscriber, or sample data.")
@click.option("--strict", is_flag=True, help="Fail on lint warnings too.")
@pass_state
def render(state: State, slug: str, out: Path | None, as_: str | None, strict: bool) -> None:
    """Render SLUG to out/SLUG/email.mjml, email.html and email.txt, then lint it. The
    articles' own images go to out/SLUG/assets/, and email.local.html shows the email with them
    from there (email.html refers to them as readers get them: the archive, or the message).

    \b
    Example:
      campaign render back-pain --as sample
    """
    ws = state.workspace
    build = build_campaign(ws, slug)
    out = out or ws.root / "out"
    copy = personal_copy(state.store, ws, build, as_) if as_ else None
    for path in write_outputs(build, out, (copy.html, copy.text) if copy else None):
        click.echo(str(path))
    _report(build.findings, strict, err=True)


@click.command()
@click.argument("slug")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@pass_state
def lint(state: State, slug: str, strict: bool) -> None:
    """Check SLUG's email: size, links, images, unsubscribe, address, subject, MJML.

    Errors exit 1; warnings print and exit 0 unless --strict.

    \b
    Example:
      campaign lint back-pain --strict
    """
    _report(build_campaign(state.workspace, slug).findings, strict, err=False)
