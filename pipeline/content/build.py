"""The one build: a campaign's articles composed, rendered (MJML compiled once) and linted.

`render`, `lint`, `preview`, `send`, `test-send`, scheduled sends and each occurrence of a
recurring digest all build through `build`, so what a marketer checks is what goes out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pipeline.content.compose import compose
from pipeline.content.images import shown_locally
from pipeline.content.lint import Finding, errors, lint
from pipeline.content.models import Article
from pipeline.content.render import Rendered, Renderer
from pipeline.errors import LintFailed
from pipeline.files import write_all_atomic
from pipeline.settings.campaign import CampaignSettings, load_campaign
from pipeline.settings.workspace import Workspace


@dataclass(frozen=True)
class Content:
    """What a send says, with merge tags left for each recipient: fixed when the send starts."""

    subject: str
    preheader: str
    html: str
    text: str

    @property
    def digest(self) -> str:
        """A SHA-256 of every part, so two builds can be told apart without comparing them."""
        hashed = hashlib.sha256()
        for part in (self.subject, self.preheader, self.html, self.text):
            data = part.encode("utf-8")
            hashed.update(len(data).to_bytes(8, "big") + data)
        return hashed.hexdigest()


@dataclass(frozen=True)
class Build:
    settings: CampaignSettings
    rendered: Rendered
    findings: list[Finding]

    @property
    def content(self) -> Content:
        newsletter = self.rendered.newsletter
        return Content(newsletter.subject, newsletter.preheader, self.rendered.html, self.rendered.text)

    def require_clean(self) -> Build:
        """This build, or LintFailed when lint found errors: nothing with errors is ever sent."""
        problems = errors(self.findings)
        if problems:
            slug = self.settings.slug
            raise LintFailed(f"campaign {slug!r} has {len(problems)} lint error(s), the first: {problems[0]}; "
                             f"see 'campaign lint {slug}'")
        return self


def build(workspace: Workspace, settings: CampaignSettings, *, articles: list[Article] | None = None,
          subject: str | None = None, renderer: Renderer | None = None) -> Build:
    """Compose, render and lint, all in memory: the campaign's own articles, or those given
    (a digest's occurrence) under the subject given."""
    newsletter = compose(workspace, settings, articles, subject)
    rendered = (renderer or Renderer(workspace)).render(newsletter)
    return Build(settings, rendered, lint(rendered, workspace))


def build_campaign(workspace: Workspace, slug: str, renderer: Renderer | None = None) -> Build:
    return build(workspace, load_campaign(workspace, slug), renderer=renderer)


def output_dir(out: Path, slug: str) -> Path:
    return out / slug


def write_outputs(built: Build, out: Path, personal: tuple[str, str] | None = None) -> list[Path]:
    """out/SLUG/email.mjml, email.html, email.txt, the articles' own images in assets/, and with
    `personal` (one recipient's HTML and text) personal.html and personal.txt: all replaced, or none.

    email.html refers to the images where readers' mail clients get them (the archive, or parts of
    the message); when that is not assets/ beside it, email.local.html is the same email showing
    them from there, to open in a browser on this machine before the archive is published."""
    target = output_dir(out, built.settings.slug)
    html, assets = built.rendered.html, built.rendered.newsletter.assets
    files: dict[Path, str | bytes] = {target / "email.mjml": built.rendered.mjml,
                                      target / "email.html": html, target / "email.txt": built.rendered.text}
    if any(asset.src != f"assets/{asset.name}" for asset in assets):
        files[target / "email.local.html"] = shown_locally(html, assets)
    files.update((target / "assets" / asset.name, asset.data) for asset in assets)
    if personal is not None:
        files[target / "personal.html"], files[target / "personal.txt"] = personal
    write_all_atomic(files)
    if target / "email.local.html" not in files:
        (target / "email.local.html").unlink(missing_ok=True)  # an earlier build's, with other images
    return list(files)
