"""A campaign from its folder to its rendered, linted email, and the files `campaign render` writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.content.compose import compose
from pipeline.content.lint import Finding, lint
from pipeline.content.merge import prepare
from pipeline.content.render import Rendered, Renderer
from pipeline.files import write_atomic
from pipeline.settings.campaign import CampaignSettings, load_campaign
from pipeline.settings.workspace import Workspace

SAMPLE = "sample"


@dataclass(frozen=True)
class Build:
    settings: CampaignSettings
    rendered: Rendered
    findings: list[Finding]


def build_campaign(workspace: Workspace, slug: str, renderer: Renderer | None = None) -> Build:
    """Read, compose, render (MJML compiled once) and lint one campaign, all in memory."""
    settings = load_campaign(workspace, slug)
    rendered = (renderer or Renderer(workspace)).render(compose(workspace, settings))
    return Build(settings, rendered, lint(rendered, workspace))


def recipient_links(workspace: Workspace, token: str) -> dict[str, str]:
    return {
        "unsubscribe_url": f"{workspace.unsubscribe_url}/unsubscribe/{token}",
        "preferences_url": f"{workspace.unsubscribe_url}/preferences/{token}",
    }


def sample_values(workspace: Workspace) -> dict[str, str]:
    """Made-up recipient data for previews: what a real subscriber row would fill in."""
    return {
        "first_name": "Alex",
        "last_name": "Rivera",
        "email": "alex.rivera@example.com",
        **recipient_links(workspace, SAMPLE),
    }


def personalise(rendered: Rendered, workspace: Workspace, values: Mapping[str, object]) -> tuple[str, str]:
    """One recipient's HTML and text from the compiled email."""
    defaults = {"first_name": workspace.defaults.first_name_fallback}
    html = prepare(rendered.html).fill(values, html=True, defaults=defaults)
    text = prepare(rendered.text).fill(values, html=False, defaults=defaults)
    return html, text


def output_dir(out: Path, slug: str) -> Path:
    return out / slug


def write_outputs(build: Build, out: Path) -> list[Path]:
    """out/SLUG/email.mjml, email.html, email.txt; each file replaced whole or not at all."""
    target = output_dir(out, build.settings.slug)
    files = {"email.mjml": build.rendered.mjml, "email.html": build.rendered.html, "email.txt": build.rendered.text}
    paths = []
    for name, content in files.items():
        write_atomic(target / name, content)
        paths.append(target / name)
    return paths


def write_personal_copy(build: Build, workspace: Workspace, out: Path, values: Mapping[str, object]) -> list[Path]:
    html, text = personalise(build.rendered, workspace, values)
    target = output_dir(out, build.settings.slug)
    paths = [target / "personal.html", target / "personal.txt"]
    write_atomic(paths[0], html)
    write_atomic(paths[1], text)
    return paths
