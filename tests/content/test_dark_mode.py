"""Every block of the email is readable in light mode and in dark mode, measured in a real Chromium.

For each block the page's own JavaScript finds the text colour the browser computed and the
background the text sits on (the first ancestor with a background that is not transparent,
anything translucent above it blended in), and works out the WCAG contrast ratio itself.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from pipeline.content.build import build_campaign
from pipeline.content.colours import luminance, palette
from pipeline.settings.scaffold import new_campaign
from pipeline.settings.workspace import Workspace, load_workspace
from pipeline.web.browser import Chromium
from pipeline.web.preview import force_dark
from tests.conftest import ARTICLES, edit, needs_chromium

BODY, LARGE = 4.5, 3.0
# Block -> (CSS selector of the elements whose text it is, the ratio that text needs).
# The classes are the templates' own (css-class on sections, texts and buttons).
NEWSLETTER = {
    "header": (".brand-name div", LARGE),
    "title": (".hero-title h1", LARGE),
    "byline": (".byline div", BODY),
    "greeting": (".greeting div", BODY),
    "lead": (".lead div", BODY),
    "heading": (".article-text h2", LARGE),
    "paragraph": (".article-text p", BODY),
    "list": (".article-text li", BODY),
    "link": (".article-text a", BODY),
    "quote": (".article-text blockquote", BODY),
    "article button": (".article-button a", LARGE),
    "cta text": (".cta-text div", BODY),
    "cta button": (".cta-button a", LARGE),
    "disclaimer": (".disclaimer div", BODY),
    "footer address": (".footer-text .footer-address", BODY),
    "footer links": (".footer-text a", BODY),
}
DIGEST = {
    "header": (".brand-name div", LARGE),
    "title": (".hero-title h1", LARGE),
    "greeting": (".greeting div", BODY),
    "entry title": (".entry-title a", LARGE),
    "excerpt": (".excerpt div", BODY),
    "read more": (".read-more a", BODY),
    "cta text": (".cta-text div", BODY),
    "cta button": (".cta-button a", LARGE),
    "disclaimer": (".disclaimer div", BODY),
    "footer address": (".footer-text .footer-address", BODY),
    "footer links": (".footer-text a", BODY),
}
# Bands whose background must follow the mode, whatever text they hold (the header may be a logo).
BANDS = {"header": ".header", "body": ".card", "cta": ".cta", "footer": ".footer"}

_MEASURE = """
(() => {
  const parse = (value) => {
    const found = value.match(/rgba?\\(([^)]*)\\)/);
    if (!found) return null;
    const parts = found[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1];
  };
  const blend = (top, bottom) => [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const background = (element) => {
    const layers = [];
    for (let e = element; e; e = e.parentElement) {
      const colour = parse(getComputedStyle(e).backgroundColor);
      if (colour && colour[3] > 0) {
        layers.push(colour);
        if (colour[3] >= 1) break;
      }
    }
    if (!layers.length || layers[layers.length - 1][3] < 1) return null;
    return layers.reduceRight((under, layer) => (under ? blend(layer, under) : layer), null);
  };
  const luminance = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => {
      v /= 255;
      return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const hex = (c) => '#' + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, '0')).join('');
  const measured = {};
  for (const [block, selector] of Object.entries(BLOCKS)) {
    measured[block] = [...document.querySelectorAll(selector)]
      .filter((e) => e.textContent.trim())
      .map((e) => {
        const bg = background(e);
        let fg = parse(getComputedStyle(e).color);
        if (!bg || !fg) return {text: e.textContent.trim().slice(0, 40), fg: null, bg: null, ratio: 0};
        fg = blend(fg, bg);
        const [a, b] = [luminance(fg), luminance(bg)];
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        return {text: e.textContent.trim().slice(0, 40), fg: hex(fg), bg: hex(bg), ratio};
      });
  }
  const bands = {};
  for (const [band, selector] of Object.entries(BANDS)) {
    bands[band] = [...document.querySelectorAll(selector)].map((e) => {
      const inner = e.querySelector('table') || e;
      return hex(background(inner) || [0, 0, 0, 1]);
    });
  }
  return {measured, bands};
})()
"""


def measure(browser: Chromium, html: str, scheme: Literal["light", "dark"],
            blocks: dict[str, tuple[str, float]]) -> dict[str, Any]:
    """The colours and contrast ratio of every element of every block, and each band's background."""
    with tempfile.TemporaryDirectory(prefix="campaign-dark-") as folder:
        page = Path(folder) / "email.html"
        page.write_text(html, encoding="utf-8")
        browser.set_viewport(640, 900)
        browser.emulate_color_scheme(scheme)
        browser.open(page.as_uri())
        selectors = {name: selector for name, (selector, _) in blocks.items()}
        script = _MEASURE.replace("BLOCKS", json.dumps(selectors)).replace("BANDS", json.dumps(BANDS))
        result: dict[str, Any] = browser.evaluate(script)
        return result


def failures(result: dict[str, Any], blocks: dict[str, tuple[str, float]]) -> list[str]:
    """What falls short: a block missing from the page, or any of its elements under its ratio."""
    problems = []
    for block, (_, ratio) in blocks.items():
        found = result["measured"][block]
        if not found:
            problems.append(f"{block}: no element found")
        for element in found:
            if element["ratio"] < ratio:
                problems.append(f"{block} {element['text']!r}: {element['fg']} on {element['bg']} is "
                                f"{element['ratio']:.2f}:1, needs {ratio:g}:1")
    return problems


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Chromium]:
    with Chromium() as opened:
        yield opened


def _without_logo(workspace_dir: Path) -> Workspace:
    """The workspace with its logo taken out, so the header shows the brand's name as text."""
    edit(workspace_dir / "campaign.toml", 'logo_url = "https://willowcreek-acupuncture.example/images/logo.png"\n', "")
    return load_workspace(workspace_dir)


def _digest(workspace: Workspace) -> str:
    """A digest of three articles, with the call to action its settings offer turned on."""
    folder = new_campaign(workspace, "digest", [ARTICLES / "hydration.md", ARTICLES / "tea.html",
                                                ARTICLES / "sleep.txt"])
    settings = folder / "settings.toml"
    settings.write_text(settings.read_text(encoding="utf-8").replace("# [cta]", "[cta]")
                        .replace("# text =", "text =").replace("# button =", "button =").replace("# url =", "url ="),
                        encoding="utf-8")
    return build_campaign(workspace, "digest").rendered.html


def _newsletter_with_a_link(workspace: Workspace) -> str:
    """The example with a link in its text, so links inside paragraphs are measured too."""
    article = workspace.campaign_dir("back-pain") / "article.md"
    edit(article, "or book a 15-minute phone consultation",
         "or [book a 15-minute phone consultation](https://willowcreek-acupuncture.example/book)")
    return build_campaign(workspace, "back-pain").rendered.html


@needs_chromium
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_newsletter_block_meets_wcag_aa(browser: Chromium, workspace_dir: Path,
                                              scheme: Literal["light", "dark"]) -> None:
    html = _newsletter_with_a_link(_without_logo(workspace_dir))
    result = measure(browser, html, scheme, NEWSLETTER)
    assert failures(result, NEWSLETTER) == []


@needs_chromium
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_digest_block_meets_wcag_aa(browser: Chromium, workspace_dir: Path,
                                          scheme: Literal["light", "dark"]) -> None:
    result = measure(browser, _digest(_without_logo(workspace_dir)), scheme, DIGEST)
    assert failures(result, DIGEST) == []


@needs_chromium
def test_every_band_turns_dark_and_back(browser: Chromium, workspace: Workspace) -> None:
    """With the logo in the header (no text to measure there), the bands themselves follow the mode."""
    html = build_campaign(workspace, "back-pain").rendered.html
    light = measure(browser, html, "light", NEWSLETTER)["bands"]
    dark = measure(browser, html, "dark", NEWSLETTER)["bands"]
    assert set(light["header"] + light["footer"]) == {workspace.brand.background_color}
    assert set(light["body"]) == {"#ffffff"}
    for band in BANDS:
        assert light[band] and len(dark[band]) == len(light[band])
        for before, after in zip(light[band], dark[band]):
            assert luminance(after) < min(0.1, luminance(before)), (band, before, after)
    assert set(dark["header"] + dark["footer"]) == {palette(workspace.brand).dark.page}


@needs_chromium
def test_the_previews_dark_toggle_shows_the_same_dark_mode(browser: Chromium, workspace_dir: Path) -> None:
    """force_dark turns the dark rules on whatever the viewer's setting: measured in a light browser."""
    workspace = _without_logo(workspace_dir)
    html = _newsletter_with_a_link(workspace)
    forced = measure(browser, force_dark(html), "light", NEWSLETTER)
    assert failures(forced, NEWSLETTER) == []
    emulated = measure(browser, html, "dark", NEWSLETTER)
    assert forced == emulated
    digest = measure(browser, force_dark(_digest(workspace)), "light", DIGEST)
    assert failures(digest, DIGEST) == []


@needs_chromium
@pytest.mark.parametrize("colours", [
    # A pale palette: every brand colour fails on white and is adjusted.
    {"primary_color": "#7fd1ae", "accent_color": "#ffcc00", "background_color": "#fdf6e3", "text_color": "#9a9a9a"},
    # A dark page in light mode and a near-black primary.
    {"primary_color": "#101820", "accent_color": "#2d6cdf", "background_color": "#1b1f24", "text_color": "#333333"},
])
def test_a_clinics_own_palette_is_made_readable_too(browser: Chromium, workspace_dir: Path,
                                                    colours: dict[str, str]) -> None:
    config = workspace_dir / "campaign.toml"
    defaults = {"primary_color": "#1f6f5c", "accent_color": "#c8553d", "background_color": "#f4f1ea",
                "text_color": "#22313f"}
    for key, value in colours.items():
        edit(config, f'{key} = "{defaults[key]}"', f'{key} = "{value}"')
    workspace = _without_logo(workspace_dir)
    newsletter, digest = _newsletter_with_a_link(workspace), _digest(workspace)
    for scheme in ("light", "dark"):
        assert failures(measure(browser, newsletter, scheme, NEWSLETTER), NEWSLETTER) == [], scheme
        assert failures(measure(browser, digest, scheme, DIGEST), DIGEST) == [], scheme

