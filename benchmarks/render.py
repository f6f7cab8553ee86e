"""Render a 2,000-word article end to end and compare with one bare mjml-python compile.

    python benchmarks/render.py [--runs 50]

End to end = read the article, compose, Jinja -> MJML, compile, text part, lint.
Targets: under 50 ms per render; a build with its own Renderer (as `campaign render` and `send`
make one) within 1.5x of one reusing a Renderer.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mjml import mjml2html

from pipeline.content.build import build_campaign
from pipeline.content.render import Renderer
from pipeline.settings.scaffold import init_workspace, new_campaign
from pipeline.settings.workspace import load_workspace

TARGET_MS = 50.0
FRESH_RATIO = 1.5
SENTENCES = [
    "Acupuncture sessions usually last between thirty and sixty minutes, including a short conversation first.",
    "Many patients notice that they sleep better in the nights after a treatment.",
    "Gentle movement such as walking or tai chi supports the work done in the treatment room.",
    "We always ask about medicines you take, because some herbs interact with them.",
    "Keeping a short diary of symptoms helps us see what changes from week to week.",
    "Warm food and regular meals are a simple way to support digestion through the winter.",
]


def article(words: int = 2000) -> str:
    """A Markdown article of about `words` words with headings, lists, links and a quote."""
    parts = ["---", "title: A long guide to caring for your back", "author: Dr. Mei Lin",
             "canonical_url: https://willowcreek-acupuncture.example/blog/long-guide", "---", "",
             "This guide gathers what we tell patients about back pain, from posture to sleep.", ""]
    count, section = 0, 0
    while count < words:
        section += 1
        parts += [f"## Part {section}: what helps", ""]
        for n in range(3):
            paragraph = " ".join(SENTENCES[(section + n + k) % len(SENTENCES)] for k in range(3))
            if n == 1:
                paragraph += " Read [our guide](https://willowcreek-acupuncture.example/guide) for more."
            parts += [paragraph, ""]
            count += len(paragraph.split())
        parts += [f"- {SENTENCES[(section + k) % len(SENTENCES)]}" for k in range(4)] + [""]
        parts += ["> Small, steady changes matter more than big ones.", ""]
        count += 60
    return "\n".join(parts)


def timed(fn: Callable[[], object], runs: int, warmup: int = 5) -> float:
    """Median milliseconds of fn over runs calls, after warm-up calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        init_workspace(root)
        source = Path(tmp) / "long-guide.md"
        source.write_text(article(), encoding="utf-8")
        workspace = load_workspace(root)
        new_campaign(workspace, "long-guide", [source])
        renderer = Renderer(workspace)
        build = build_campaign(workspace, "long-guide", renderer)
        mjml = build.rendered.mjml
        words = len(source.read_text().split())

        end_to_end = timed(lambda: build_campaign(workspace, "long-guide", renderer), args.runs)
        # As `campaign render` and `send` build: a Renderer of their own, templates found afresh.
        fresh = timed(lambda: build_campaign(workspace, "long-guide"), args.runs)
        # As a new process builds: environments of its own, the compiled templates read from disk.
        new_process = timed(lambda: build_campaign(workspace, "long-guide", Renderer(workspace, fresh=True)),
                            args.runs)
        bare = timed(lambda: mjml2html(mjml, fonts={}, disable_comments=True), args.runs)

    print(f"article: {words} words, HTML {len(build.rendered.html) / 1024:.1f} KB, lint findings: "
          f"{len(build.findings)}")
    print(f"end-to-end render: {end_to_end:.2f} ms (median of {args.runs})")
    print(f"bare mjml2html compile of the same MJML: {bare:.2f} ms")
    print(f"ratio end-to-end / bare compile: {end_to_end / bare:.1f}x")
    for label, ms in (("a Renderer of its own, as campaign render and send make one", fresh),
                      ("new environments, as a new process has (bytecode from disk)", new_process)):
        verdict = "meets" if ms / end_to_end <= FRESH_RATIO else "MISSES"
        print(f"build with {label}: {ms:.2f} ms; ratio to the reused Renderer {ms / end_to_end:.2f}x; "
              f"target <= {FRESH_RATIO}x: {verdict}")
    verdict = "meets" if end_to_end < TARGET_MS else "MISSES"
    print(f"target < {TARGET_MS:.0f} ms per render: {verdict}")
    return 0 if end_to_end < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
