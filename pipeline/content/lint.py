"""Checks a rendered email for what gets newsletters clipped, filtered or complained about."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import lxml.html
from markupsafe import escape

from pipeline.content.colours import palette
from pipeline.content.compose import Newsletter
from pipeline.content.images import MAX_WIDTH, TOTAL_WARNING, Asset
from pipeline.content.merge import TAG, field_name
from pipeline.content.mjml_check import check_mjml
from pipeline.content.models import Image
from pipeline.content.readers.common import squash
from pipeline.content.render import Rendered
from pipeline.settings.workspace import Workspace

KB = 1024
CLIP_BYTES = 102 * KB  # Gmail hides everything past this behind "View entire message"
CLIP_WARNING_BYTES = 90 * KB
SUBJECT_RANGE = (10, 78)
PREHEADER_LIMIT = 110  # inboxes show about this much of it; past that it is cut off mid-thought
_LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")
_SAFE_SCHEMES = ("https://", "mailto:", "tel:", "sms:")
_SCRIPT_SCHEMES = ("javascript:", "vbscript:")
# Browsers ignore tabs, line breaks and leading controls in a URL's scheme ("java\tscript:").
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")
# Link text a screen reader's list of links cannot tell apart, or reads out letter by letter.
_VAGUE_LINK_TEXT = {"click here", "here", "click", "read more", "more", "learn more", "link", "this link",
                    "this", "go"}
_BARE_URL = re.compile(r"^(?:https?://|www\.)\S+$|^[\w.-]+\.[a-z]{2,}/\S*$", re.IGNORECASE)
_FILE_NAME = re.compile(r"^[\w-]+\.(?:jpe?g|png|gif|webp|svg)$", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    code: str
    where: str
    message: str
    # A CSS selector for the element of the email it concerns (a link, an image), so the preview
    # can show the finding on the email itself; None for the email as a whole.
    target: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message} [{self.code}]"


def _short(text: str, limit: int = 50) -> str:
    text = squash(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _template_of(rendered: Rendered, needle: str) -> str:
    """ " (templates/NAME)" for the template that wrote the first MJML line holding needle.

    mjml-python writes the body of the HTML on very few lines, so an HTML line number alone
    hardly says where something came from; the MJML keeps the templates' lines.
    """
    if needle:
        for number, line in enumerate(rendered.mjml.split("\n")):
            if needle in line and number < len(rendered.mjml_lines) and rendered.mjml_lines[number]:
                return f" (templates/{rendered.mjml_lines[number]})"
    return ""


def _link_text(a: lxml.html.HtmlElement, href: str, label: str, where: str) -> list[Finding]:
    """Link text that says nothing out of context ("click here") or is an address read out."""
    text = squash(a.text_content())
    if not text:
        alts = [squash(img.get("alt") or "") for img in a.iter("img")]
        if any(alts):
            return []  # a linked image is named by its alt text (checked with the images)
        return [Finding("warning", "link-text", where, f"link to {_short(href, 80)} has no text a screen reader can say")]
    words = re.sub(r"[^\w\s]", "", text).strip().lower()
    if words in _VAGUE_LINK_TEXT:
        return [Finding("warning", "link-text", where,
                        f"link text {label!r} says nothing on its own (screen readers list links by their "
                        f"text); say where it goes, e.g. 'Read about acupuncture for back pain'")]
    if _BARE_URL.match(text):
        return [Finding("warning", "link-text", where,
                        f"link text {label!r} is a bare address, read out character by character; "
                        f"give the link words that say where it goes")]
    return []


def _selector(tag: str, attribute: str, value: str) -> str:
    """A CSS selector for tag elements whose attribute starts with value (the preview's copy adds
    UTM parameters to a link's address)."""
    quoted = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\a ")
    return f'{tag}[{attribute}^="{quoted}"]'


def _links(doc: lxml.html.HtmlElement, rendered: Rendered) -> list[Finding]:
    found: list[Finding] = []
    for a in doc.iter("a"):
        href = (a.get("href") or "").strip()
        if TAG.fullmatch(href):
            continue
        target = _selector("a", "href", href) if href else None
        found += [replace(finding, target=target) for finding in _link(a, href, rendered)]
    return found


def _link(a: lxml.html.HtmlElement, href: str, rendered: Rendered) -> list[Finding]:
    """One link's checks."""
    where = f"email.html:{a.sourceline}" + _template_of(rendered, f'href="{escape(href)}"')
    label = _short(a.text_content()) or "(no text)"
    lowered = href.lower()
    scheme = _URL_NOISE.sub("", href).lower()
    if not href or href == "#" or href.startswith("#"):
        return [Finding("error", "empty-link", where, f"link {label!r} goes nowhere (href {href!r})")]
    if scheme.startswith(_SCRIPT_SCHEMES):
        return [Finding("error", "script-link", where, f"link {label!r} runs a script ({_short(href)})")]
    if scheme.startswith("data:"):
        return [Finding("error", "data-link", where,
                        f"link {label!r} opens inline data ({_short(href)}); mail filters treat it as an attack")]
    found = _link_text(a, href, label, where)
    if lowered.startswith("http://"):
        found.append(Finding("warning", "insecure-link", where, f"link {label!r} is not https: {_short(href, 80)}"))
    elif not lowered.startswith(_SAFE_SCHEMES) and not TAG.search(href):
        found.append(Finding("error", "relative-link", where,
                             f"link {label!r} is not a full https address: {_short(href, 80)}"))
    return found


def _images(doc: lxml.html.HtmlElement, rendered: Rendered) -> list[Finding]:
    found: list[Finding] = []
    declared = _declared_widths(rendered.newsletter)
    for img in doc.iter("img"):
        src = img.get("src") or ""
        target = _selector("img", "src", src) if src else None
        found += [replace(finding, target=target) for finding in _image(img, src, rendered, declared)]
    return found


def _declared_widths(newsletter: Newsletter) -> dict[str, tuple[int, str | None]]:
    """The articles' pictures on the web that say how wide they are (an HTML width attribute):
    address -> (width, the article file and line, when known)."""
    article = newsletter.article
    if article is not None:
        name = Path(article.source).name if article.source else "article"
        images = [article.hero_image, *(b for b in article.blocks() if isinstance(b, Image))]
        return {i.src: (i.width, f"{name}:{i.line}" if i.line else name) for i in images if i and i.width}
    return {e.image.src: (e.image.width, None) for e in newsletter.entries if e.image and e.image.width}


def _image(img: lxml.html.HtmlElement, src: str, rendered: Rendered,
           declared: dict[str, tuple[int, str | None]]) -> list[Finding]:
    """One image's checks."""
    found: list[Finding] = []
    alt = (img.get("alt") or "").strip()
    where = f"email.html:{img.sourceline}" + _template_of(rendered, f'src="{escape(src)}"')
    if not alt:
        found.append(Finding("error", "image-alt", where, f"image {_short(src, 80)} has no alt text"))
    elif _FILE_NAME.match(alt) or alt == src.rsplit("/", 1)[-1]:
        found.append(Finding("warning", "image-alt", where,
                             f"image {_short(src, 80)} has its file name {alt!r} as alt text; say what it shows"))
    own = next((a for a in rendered.newsletter.assets if a.src == src), None)  # an article's own image file
    if own is not None and not src.startswith(("https://", "http://", "cid:")):
        found.append(Finding("error", "image-src", own.where,
                             f"image {own.original!r} is a file of the article's: set [archive] base_url (where "
                             "`campaign archive` publishes it) or [images] embed = true (to attach it)"))
    elif src.startswith("http://"):
        found.append(Finding("warning", "insecure-image", where, f"image {_short(src, 80)} is not https"))
    elif own is None and not src.startswith("https://") and not TAG.search(src):
        found.append(Finding("error", "image-src", where, f"image {_short(src, 80)!r} is not a full https address"))
    width, source = declared.get(src, (0, None))
    if own is None and width > MAX_WIDTH:
        found.append(Finding("warning", "image-width", source or where,
                             f"image {_short(src, 80)} is {width} px wide (its width attribute); email shows it "
                             f"at most 600 px wide and readers download all of it: link a copy at most "
                             f"{MAX_WIDTH} px wide, or keep the file beside the article, where it is resized"))
    return found


def _image_files(assets: tuple[Asset, ...], html: str, embed: bool) -> list[Finding]:
    """The article's own images the email shows: wider than email needs (they are scaled down), or
    heavy in all, whether readers' mail clients fetch them or every message carries them."""
    assets = tuple(a for a in assets if a.src in html)  # a digest shows one picture of each article
    found = [Finding("warning", "image-width", a.where,
                     f"image {a.original!r} is {a.original_width} px wide; it is resized to {a.width} px "
                     "(twice the 600 px column) for email" if a.width < a.original_width else
                     f"image {a.original!r} is {a.original_width} px wide, and an animation is sent as it is: "
                     f"make it at most {MAX_WIDTH} px wide")
             for a in assets if a.original_width > MAX_WIDTH]
    total = sum(len(a.data) for a in assets)
    if total > TOTAL_WARNING:
        carried = ("attached to every message ([images] embed), they make each one that much heavier"
                   if embed else "readers on phones wait for every one")
        found.append(Finding("warning", "image-size", "email.html",
                             f"the article's images add up to {total / KB / KB:.1f} MB, even resized; {carried}: "
                             "use fewer or smaller pictures"))
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
    findings += _links(doc, rendered)
    findings += _images(doc, rendered)
    findings += _image_files(newsletter.assets, html, workspace.images.embed)

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
    findings += _preheader(newsletter.preheader)
    findings += _contrast(html, workspace)

    findings += _leftovers("email.html", _html_strings(doc))
    findings += _leftovers("email.txt", list(enumerate(text.split("\n"), start=1)))

    # Findings about the article itself, each naming the line of the article file it is about,
    # are added here: see _article below.
    findings += _article(rendered)
    return findings


def _article(rendered: Rendered) -> list[Finding]:
    """Findings on the article's own source, naming its file and line (content/article_lint.py).

    The checks above look at the rendered email and name the email's (and template's) line;
    these name the line of the article a finding comes from.
    """
    # Imported here: article_lint imports this module's Finding.
    from pipeline.content.article_lint import article_findings

    article = rendered.newsletter.article
    if article is None:
        return []
    return article_findings(article, Path(article.source).name if article.source else "article")


def _preheader(preheader: str) -> list[Finding]:
    if not preheader.strip():
        return [Finding("warning", "preheader", "settings.toml",
                        "no preheader: inboxes will show the first text of the email instead")]
    if len(preheader) > PREHEADER_LIMIT:
        return [Finding("warning", "preheader-length", "settings.toml",
                        f"preheader is {len(preheader)} characters; inboxes show about {PREHEADER_LIMIT}, "
                        f"so it is cut off at '…{preheader[PREHEADER_LIMIT - 30:PREHEADER_LIMIT]}'; shorten it")]
    return []


def _contrast(html: str, workspace: Workspace) -> list[Finding]:
    """A brand colour the email had to change to keep its text readable (WCAG AA), where used."""
    lowered = html.lower()
    return [Finding("warning", "contrast", f"campaign.toml: [brand] {a.setting}", str(a))
            for a in palette(workspace.brand).adjustments if a.used in lowered]


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "error"]
