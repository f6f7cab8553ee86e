"""Newsletter -> Jinja2 -> MJML -> HTML, and the text part straight from the content model.

MJML is compiled once per campaign. Per-recipient fields stay in the output as merge tags
(see merge.py) for the per-recipient stage.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from mjml import mjml2html

from pipeline.content.colours import palette
from pipeline.content.compose import Newsletter
from pipeline.content.merge import tag
from pipeline.content.mjml_check import check_mjml
from pipeline.content.models import (
    Block,
    Heading,
    Image,
    Inline,
    ListBlock,
    Paragraph,
    Quote,
    Span,
)
from pipeline.errors import CampaignError, NotFoundError, TemplateError
from pipeline.files import within
from pipeline.settings.workspace import Workspace

# Each template's output is wrapped in these marks so a line of generated MJML can be traced
# back to the template that wrote it. They are control characters no reader lets through.
_MARK = re.compile("\x1e([<>])([^\x1e]*)\x1e")
TEXT_WIDTH = 76
MESSAGE_TEMPLATES = ("confirm",)  # templates of messages that are not newsletters: the signup's confirmation


class _MarkingLoader(jinja2.FileSystemLoader):
    """The workspace's templates, marked so MJML errors can name the template that wrote a line."""

    def __init__(self, directory: str, root: Path) -> None:
        super().__init__(directory)
        self.root = root

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Any]:
        source, filename, uptodate = super().get_source(environment, template)
        # Jinja refuses "../" in names but follows symlinks: one to /etc/passwd would be mailed out.
        if within(self.root, Path(filename)) is None:
            raise TemplateError("is a link to a file outside the workspace", where=f"templates/{template}")
        if template.endswith(".mjml.j2"):
            source = f"\x1e>{template}\x1e{source}\x1e<\x1e"
        return source, filename, uptodate


def _strip_marks(output: str) -> tuple[str, tuple[str, ...]]:
    """The output without marks, and for each of its lines the template that wrote it."""
    stack: list[str] = []
    chunks: list[str] = []
    lines: list[str] = []
    pos = 0
    for match in _MARK.finditer(output):
        chunk = output[pos:match.start()]
        chunks.append(chunk)
        lines.extend([stack[-1] if stack else ""] * chunk.count("\n"))
        if match.group(1) == ">":
            stack.append(match.group(2))
        elif stack:
            stack.pop()
        pos = match.end()
    chunk = output[pos:]
    chunks.append(chunk)
    lines.extend([stack[-1] if stack else ""] * (chunk.count("\n") + 1))
    return "".join(chunks), tuple(lines)


def _attr(value: str) -> str:
    return str(escape(value))


def inline_html(spans: Inline, link_color: str = "") -> Markup:
    """Spans as HTML for inside mj-text: escaped text, line breaks, emphasis and links."""
    out: list[str] = []
    i = 0
    style = f' style="color:{_attr(link_color)};text-decoration:underline;"' if link_color else ""
    while i < len(spans):
        href = spans[i].href
        run: list[Span] = []
        while i < len(spans) and spans[i].href == href:
            run.append(spans[i])
            i += 1
        html = "".join(_span_html(s) for s in run)
        out.append(f'<a href="{_attr(href)}"{style}>{html}</a>' if href else html)
    return Markup("".join(out))


def _span_html(span: Span) -> str:
    html = str(escape(span.text)).replace("\n", "<br>\n")
    if span.code:
        html = f'<code style="font-family:Menlo,Consolas,monospace;font-size:90%;">{html}</code>'
    if span.italic:
        html = f"<em>{html}</em>"
    if span.bold:
        html = f"<strong>{html}</strong>"
    return html


def inline_text(spans: Inline) -> str:
    """Spans as plain text: links written out as their address."""
    out: list[str] = []
    for span in spans:
        if not span.href:
            out.append(span.text)
            continue
        target = span.href.removeprefix("mailto:")
        out.append(target if span.text.strip() in (span.href, target) else f"{span.text} ({target})")
    return "".join(out)


def wrap(text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """Wrap prose for the text part without breaking addresses; hard line breaks are kept."""
    lead = indent if first is None else first
    lines: list[str] = []
    for n, piece in enumerate(text.split("\n")):
        wrapped = textwrap.wrap(piece, width=width, initial_indent=lead if n == 0 else indent,
                                subsequent_indent=indent, break_long_words=False,
                                break_on_hyphens=False) or [(lead if n == 0 else indent).rstrip()]
        lines.extend(wrapped)
    return "\n".join(lines)


def text_list(block: ListBlock, depth: int = 0) -> str:
    """A list in the text part: bullets or numbers, nested lists indented."""
    lines: list[str] = []
    pad = "  " * (depth + 1)
    for n, item in enumerate(block.items, start=block.start):
        marker = f"{n}. " if block.ordered else "* "
        lines.append(wrap(inline_text(item.spans), indent=pad + " " * len(marker), first=pad + marker))
        if item.children:
            lines.append(text_list(item.children, depth + 1))
    return "\n".join(lines)


def runs(blocks: Iterable[Block]) -> list[tuple[str, list[Block]]]:
    """Consecutive text blocks share one mj-text (smaller HTML); images stand alone."""
    out: list[tuple[str, list[Block]]] = []
    for block in blocks:
        kind = "image" if isinstance(block, Image) else "text"
        if out and kind == "text" and out[-1][0] == "text":
            out[-1][1].append(block)
        else:
            out.append((kind, [block]))
    return out


def _block_kind(block: Block) -> str:
    return {Heading: "heading", Paragraph: "paragraph", ListBlock: "list", Quote: "quote",
            Image: "image"}[type(block)]


def long_date(value: date) -> str:
    return f"{value.day} {value:%B} {value.year}"


def display_url(url: str) -> str:
    """An address as people read it: no scheme, no trailing slash."""
    return re.sub(r"^https?://(www\.)?", "", url).rstrip("/")


@dataclass(frozen=True)
class Rendered:
    newsletter: Newsletter
    mjml: str
    html: str
    text: str
    mjml_lines: tuple[str, ...]  # for each MJML line, the template that produced it


# Compiled templates outlive one Renderer: per process (environments below, which reload a template
# whose file changed) and across processes (Jinja's bytecode on disk, keyed by each source's
# checksum), so a `campaign render` or `send` does not compile the templates afresh every time.
_BYTECODE = jinja2.FileSystemBytecodeCache()
_ENVIRONMENTS: dict[tuple[Path, Path, str], tuple[jinja2.Environment, jinja2.Environment]] = {}


class Renderer:
    """The templates of one workspace, loaded once and reused for every render.

    `fresh` gives it environments of its own (the preview's rebuilds, which must see an edit at
    once); otherwise the process's environments for that templates folder are reused.
    """

    def __init__(self, workspace: Workspace, fresh: bool = False) -> None:
        self.workspace = workspace
        self.dir = workspace.templates_dir
        key = (self.dir.resolve(), workspace.root.resolve(), workspace.defaults.first_name_fallback)
        environments = None if fresh else _ENVIRONMENTS.get(key)
        if environments is None:
            environments = self._environments(workspace)
            if not fresh:
                _ENVIRONMENTS[key] = environments
        self.mjml_env, self.text_env = environments

    @classmethod
    def _environments(cls, workspace: Workspace) -> tuple[jinja2.Environment, jinja2.Environment]:
        loader = _MarkingLoader(str(workspace.templates_dir), workspace.root)
        common = dict(loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True, bytecode_cache=_BYTECODE)
        mjml_env = jinja2.Environment(autoescape=True, **common)  # type: ignore[arg-type]
        text_env = jinja2.Environment(autoescape=False, **common)  # type: ignore[arg-type]
        fallback = workspace.defaults.first_name_fallback
        for env, is_html in ((mjml_env, True), (text_env, False)):
            env.filters.update(inline=inline_html, text=inline_text, wrap=wrap, text_list=text_list,
                               runs=runs, kind=_block_kind, long_date=long_date,
                               display_url=display_url)
            env.globals["merge"] = cls._merge_function(is_html, fallback)
        return mjml_env, text_env

    @staticmethod
    def _merge_function(is_html: bool, first_name_fallback: str) -> Any:
        def merge(field: str, fallback: str | None = None) -> str:
            if fallback is None and field == "first_name":
                fallback = first_name_fallback
            value = tag(field, fallback)
            return Markup(escape(value)) if is_html else value

        return merge

    def known_templates(self) -> list[str]:
        """The templates a campaign may name: not those of other messages (see render_message)."""
        if not self.dir.is_dir():
            return []
        names = (p.name.removesuffix(".mjml.j2") for p in self.dir.glob("*.mjml.j2"))
        return sorted(name for name in names if name not in MESSAGE_TEMPLATES)

    def _template(self, env: jinja2.Environment, name: str) -> jinja2.Template:
        try:
            return env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{exc.message}", where=f"{self._path(exc.name or name)}:{exc.lineno}") from None
        except jinja2.TemplateNotFound as exc:
            if exc.name != name:
                raise TemplateError(f"includes {exc.name!r}, which does not exist",
                                    where=self._path(name)) from None
            known = ", ".join(self.known_templates()) or "none"
            raise NotFoundError(f"no template {name!r} in {self.dir} (known: {known})") from None

    def _path(self, name: str) -> str:
        return str(Path(self.dir.name) / name)

    def _render(self, env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
        template = self._template(env, name)
        try:
            return template.render(context)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(exc.message or "syntax error", where=f"{self._path(exc.name or name)}:{exc.lineno}") from None
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"includes {exc.name!r}, which does not exist", where=self._path(name)) from None
        except CampaignError:
            raise  # already says where (a template linked outside the workspace)
        except Exception as exc:  # a user's template can fail in any way; say where
            raise TemplateError(str(exc) or type(exc).__name__,
                                where=_template_frame(exc, self.dir) or self._path(name)) from None

    def context(self, newsletter: Newsletter) -> dict[str, Any]:
        ws = self.workspace
        return {
            "newsletter": newsletter,
            "article": newsletter.article,
            "entries": newsletter.entries,
            "brand": ws.brand,
            # The brand's colours as the templates use them: readable in light and dark mode.
            "colours": palette(ws.brand),
            "sender": ws.sender,
            "unsubscribe_url": tag("unsubscribe_url"),
            "preferences_url": tag("preferences_url"),
            "view_url": newsletter.view_url,  # "View in your browser" (compose.view_link)
        }

    def render_message(self, name: str, context: dict[str, Any]) -> tuple[str, str]:
        """A message that is not a newsletter (a signup's confirmation): templates/NAME.mjml.j2
        compiled to HTML, and NAME.txt.j2, given the brand, its colours, the sender and `context`."""
        full = {"brand": self.workspace.brand, "colours": palette(self.workspace.brand), "sender": self.workspace.sender,
                **context}
        mjml, lines = _strip_marks(self._render(self.mjml_env, f"{name}.mjml.j2", full))
        html = compile_mjml(mjml, lines, self.workspace, self.dir)
        return html, _tidy_text(self._render(self.text_env, f"{name}.txt.j2", full))

    def render(self, newsletter: Newsletter) -> Rendered:
        context = self.context(newsletter)
        marked = self._render(self.mjml_env, f"{newsletter.template}.mjml.j2", context)
        mjml, lines = _strip_marks(marked)
        html = compile_mjml(mjml, lines, self.workspace, self.dir)
        text = self._render(self.text_env, f"{newsletter.template}.txt.j2", context)
        return Rendered(newsletter, mjml, html, _tidy_text(text), lines)


def _tidy_text(text: str) -> str:
    """At most one blank line in a row, no trailing spaces, one final newline."""
    lines = [line.rstrip() for line in text.strip("\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out) + "\n"


def _template_frame(exc: BaseException, directory: Path) -> str | None:
    """Where inside a template a render error happened, from the traceback Jinja rewrites."""
    where = None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            try:
                name = Path(filename).resolve().relative_to(directory.resolve())
                where = f"{directory.name}/{name}:{tb.tb_lineno}"
            except ValueError:
                where = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


_POSITION = re.compile(r"at position (\d+):(\d+)")


def _line_column(source: str, byte_offset: int) -> tuple[int, int]:
    before = source.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore")
    line = before.count("\n") + 1
    return line, len(before) - (before.rfind("\n") + 1) + 1


def compile_mjml(mjml: str, lines: tuple[str, ...], workspace: Workspace, directory: Path) -> str:
    """Compile MJML with mjml-python; a failure names the line of the MJML and its template."""
    try:
        return mjml2html(mjml, fonts=dict(workspace.brand.fonts), disable_comments=True)
    except ValueError as exc:
        message = str(exc)
        detail = ""
        found = _POSITION.search(message)
        if found:
            line, column = _line_column(mjml, int(found.group(1)))
        else:
            problems = check_mjml(mjml)
            line, column = (problems[0].line, problems[0].column) if problems else (1, 1)
            detail = f" ({problems[0].message})" if problems else ""
        source_line = mjml.split("\n")[line - 1] if line <= mjml.count("\n") + 1 else ""
        template = lines[line - 1] if 0 < line <= len(lines) and lines[line - 1] else None
        where = f"{directory.name}/{template}" if template else "the generated MJML"
        near = " ".join(source_line.split())[:60]
        raise TemplateError(
            f"MJML does not compile at line {line}, column {column} of the generated email.mjml: "
            f"{message}{detail}; near {near!r}",
            where=where,
        ) from None
