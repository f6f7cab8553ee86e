"""Checks a rendered email for what gets newsletters clipped, filtered or complained about."""

from __future__ import annotations

import re
from dataclasses import dataclass

import lxml.html

from pipeline.content.merge import TAG, field_name
from pipeline.content.mjml_check import check_mjml
from pipeline.content.readers.common import squash
from pipeline.content.render import Rendered
from pipeline.settings.workspace import Workspace

KB = 1024
CLIP_BYTES = 102 * KB  # Gmail hides everything past this behind "View entire message"
CLIP_WARNING_BYTES = 90 * KB
SUBJECT_RANGE = (10, 78)
_LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")
_SAFE_SCHEMES = ("https://", "mailto:", "tel:", "sms:")


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    code: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message} [{self.code}]"


def _short(text: str, limit: int = 50) -> str:
    text = squash(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _links(doc: lxml.html.HtmlElement) -> list[Finding]:
    found: list[Finding] = []
    for a in doc.iter("a"):
        href = (a.get("href") or "").strip()
        where = f"email.html:{a.sourceline}"
        label = _short(a.text_content()) or "(no text)"
        if TAG.fullmatch(href):
            continue
        lowered = href.lower()
        if not href or href == "#" or href.startswith("#"):
            found.append(Finding("error", "empty-link", where, f"link {label!r} goes nowhere (href {href!r})"))
        elif lowered.startswith("javascript:"):
            found.append(Finding("error", "script-link", where, f"link {label!r} runs a script ({_short(href)})"))
        elif lowered.startswith("http://"):
            found.append(Finding("warning", "insecure-link", where, f"link {label!r} is not https: {_short(href, 80)}"))
        elif not lowered.startswith(_SAFE_SCHEMES) and not TAG.search(href):
            found.append(Finding("error", "relative-link", where,
                                 f"link {label!r} is not a full https address: {_short(href, 80)}"))
    return found


def _images(doc: lxml.html.HtmlElement) -> list[Finding]:
    found: list[Finding] = []
    for img in doc.iter("img"):
        src = img.get("src") or ""
        where = f"email.html:{img.sourceline}"
        if not (img.get("alt") or "").strip():
            found.append(Finding("error", "image-alt", where, f"image {_short(src, 80)} has no alt text"))
        if src.startswith("http://"):
            found.append(Finding("warning", "insecure-image", where, f"image {_short(src, 80)} is not https"))
        elif not src.startswith("https://") and not TAG.search(src):
            found.append(Finding("error", "image-src", where, f"image {_short(src, 80)!r} is not a full https address"))
    return found


def _has_field(text: str, field: str) -> bool:
    return any(field_name(m.group(1)) == field for m in TAG.finditer(text))


def _html_strings(doc: lxml.html.HtmlElement) -> list[tuple[int, str]]:
    """Text and attribute values with their lines; stylesheets are left out, CSS has braces."""
    out: list[tuple[int, str]] = []
    for el in doc.iter():
        if not isinstance(el.tag, str) or el.tag in ("style", "script"):
            continue
        line = el.sourceline or 0
        out.extend((line, value) for value in el.attrib.values())
        if el.text:
            out.append((line, el.text))
        if el.tail:
            out.append((line, el.tail))
    return out


def _leftovers(name: str, lines: list[tuple[int, str]]) -> list[Finding]:
    found: list[Finding] = []
    for n, line in lines:
        match = _LEFTOVER.search(line)
        if match:
            found.append(Finding("error", "template-syntax", f"{name}:{n}",
                                 f"leftover template syntax {match.group(0)!r} near {_short(line[max(0, match.start() - 20):], 60)!r}"))
        stray = line.replace(" ", "")
        if ("*|" in stray or "|*" in stray) and not TAG.search(line):
            found.append(Finding("error", "merge-tag", f"{name}:{n}",
                                 f"broken merge tag near {_short(line, 60)!r}; write *|field|* or *|field:fallback|*"))
    return found


def lint(rendered: Rendered, workspace: Workspace) -> list[Finding]:
    """Every finding for one rendered email, errors and warnings, in a stable order."""
    findings: list[Finding] = []
    html, text, newsletter = rendered.html, rendered.text, rendered.newsletter

    for problem in check_mjml(rendered.mjml):
        template = rendered.mjml_lines[problem.line - 1] if problem.line <= len(rendered.mjml_lines) else ""
        where = f"email.mjml:{problem.line}:{problem.column}" + (f" (templates/{template})" if template else "")
        findings.append(Finding("error", "mjml", where, problem.message))

    size = len(html.encode("utf-8"))
    if size > CLIP_BYTES:
        findings.append(Finding("error", "size", "email.html",
                                f"HTML is {size / KB:.1f} KB; Gmail clips messages above {CLIP_BYTES // KB} KB"))
    elif size >= CLIP_WARNING_BYTES:
        findings.append(Finding("warning", "size", "email.html",
                                f"HTML is {size / KB:.1f} KB, close to Gmail's {CLIP_BYTES // KB} KB clipping limit"))

    doc = lxml.html.document_fromstring(html)
    findings += _links(doc)
    findings += _images(doc)

    unsubscribe_links = [a for a in doc.iter("a") if _has_field(a.get("href") or "", "unsubscribe_url")]
    if not unsubscribe_links:
        findings.append(Finding("error", "unsubscribe", "email.html", "no unsubscribe link (href *|unsubscribe_url|*)"))
    if not _has_field(text, "unsubscribe_url"):
        findings.append(Finding("error", "unsubscribe", "email.txt", "no unsubscribe address (*|unsubscribe_url|*)"))
    address = squash(workspace.brand.address)
    if address not in squash(doc.text_content()):
        findings.append(Finding("error", "postal-address", "email.html", f"the postal address {address!r} is missing"))
    if address not in squash(text):
        findings.append(Finding("error", "postal-address", "email.txt", f"the postal address {address!r} is missing"))

    low, high = SUBJECT_RANGE
    if not low <= len(newsletter.subject) <= high:
        findings.append(Finding("warning", "subject-length", "settings.toml",
                                f"subject is {len(newsletter.subject)} characters; keep it between {low} and {high}"))
    if not newsletter.preheader.strip():
        findings.append(Finding("warning", "preheader", "settings.toml",
                                "no preheader: inboxes will show the first text of the email instead"))

    findings += _leftovers("email.html", _html_strings(doc))
    findings += _leftovers("email.txt", list(enumerate(text.split("\n"), start=1)))
    return findings


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "error"]
