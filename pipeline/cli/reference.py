"""docs/cli.md, generated from the commands' own `--help`, so the reference never drifts from them.

    python -m pipeline.cli.reference > docs/cli.md

Commands are found through `list_commands` and `get_command`, as Click itself finds them when it
runs, so groups that load their commands lazily are walked the same way.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import click

REGENERATE = "python -m pipeline.cli.reference > docs/cli.md"


def reference(group: click.Group | None = None, prog: str = "campaign") -> str:
    """The Markdown reference of every command under group (default: the `campaign` command)."""
    if group is None:
        from pipeline.cli import cli

        group = cli
    root = _context(group, prog, None)
    contexts = list(_walk(root))
    lines = [
        "# Command reference",
        "",
        f"Every `{prog}` command with its help and options, exactly as `--help` prints them.",
        "This page is generated: after changing a command, regenerate it from the repository root with",
        f"`{REGENERATE}`.",
        "",
    ]
    lines += [f"- [`{ctx.command_path}`](#{_anchor(ctx.command_path)})" for ctx in contexts]
    for ctx in contexts:
        lines += ["", f"## {ctx.command_path}", ""]
        lines += _help_text(ctx.command)
        lines += ["```text", *_usage_and_options(ctx), "```"]
    return "\n".join(lines) + "\n"


def _context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    """A context like the one Click makes to print help, at a fixed width so the output is stable."""
    settings = dict(command.context_settings)
    if parent is None:
        # What a wide terminal shows: Click caps the width at max_content_width, less two columns.
        settings["terminal_width"] = settings.get("max_content_width", 80) - 2
    return command.context_class(command, info_name=name, parent=parent, **settings)


def _walk(ctx: click.Context) -> Iterator[click.Context]:
    yield ctx
    group = ctx.command
    if isinstance(group, click.Group):
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if command is not None and not command.hidden:
                yield from _walk(_context(command, name, ctx))


def _help_text(command: click.Command) -> list[str]:
    """The help as Markdown: prose paragraphs as paragraphs, Click's `\\b` blocks as code."""
    text = inspect.cleandoc(command.help or "")
    lines: list[str] = []
    for paragraph in text.split("\n\n"):
        if not paragraph.strip():
            continue
        if paragraph.startswith("\b"):
            block = paragraph.removeprefix("\b").strip("\n").splitlines()
            lines += ["```text", *block, "```", ""]
        else:
            lines += [_escape(" ".join(line.strip() for line in paragraph.splitlines())), ""]
    return lines


def _escape(prose: str) -> str:
    """Keep Markdown from reading help text as markup; backticks stay, as code."""
    for char in "\\*<":
        prose = prose.replace(char, "\\" + char)
    return prose


def _usage_and_options(ctx: click.Context) -> list[str]:
    """The usage line and the Options (and Commands) sections, as `--help` prints them."""
    formatter = ctx.make_formatter()
    ctx.command.format_usage(ctx, formatter)
    ctx.command.format_options(ctx, formatter)
    ctx.command.format_epilog(ctx, formatter)
    return [line.rstrip() for line in formatter.getvalue().rstrip("\n").splitlines()]


def _anchor(heading: str) -> str:
    """The id GitHub gives a heading made of words, spaces and hyphens."""
    return heading.lower().replace(" ", "-")


if __name__ == "__main__":
    click.echo(reference(), nl=False)
