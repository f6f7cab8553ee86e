"""`campaign signup-snippet`: the signup form as HTML, for the practice's own website."""

from __future__ import annotations

import click

from pipeline.cli.context import State, pass_state


@click.command("signup-snippet")
@pass_state
def signup_snippet(state: State) -> None:
    """Print an HTML signup form to paste into the practice's website; it posts to <base_url>/subscribe.

    The form has the fields `campaign serve` reads (email, first name, the topics of [topics]),
    the consent sentence of [signup] with its version, and a hidden field that catches robots.
    The page the reader sees next, and the confirmation email, come from `campaign serve`. A site
    other than base_url's must be in [signup] allowed_origins, or its forms are refused.

    \b
    Example:
      campaign signup-snippet > signup-form.html
    """
    from pipeline.web.signup import snippet

    html, notes = snippet(state.workspace)
    click.echo(html, nl=not html.endswith("\n"))
    for note in notes:
        click.echo(f"note: {note}", err=True)
