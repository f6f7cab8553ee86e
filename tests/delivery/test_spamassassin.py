"""Real messages through SpamAssassin's own rules: nothing the templates do should score.

Skipped without spamassassin (apt-get install spamassassin); with CAMPAIGN_REQUIRE_SPAMASSASSIN=1,
as CI sets, a missing one fails instead. Only the rules shipped with the package are used, run
locally (-L): no network, no Bayes database, so a run gives the same result every time.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.audience.recipients import sample_recipient
from pipeline.audience.tokens import Tokens
from pipeline.content.build import Build, build_campaign
from pipeline.delivery.mime import MessageFactory
from pipeline.delivery.personalise import Personaliser
from pipeline.settings.scaffold import new_campaign
from pipeline.settings.workspace import Workspace
from tests.conftest import ARTICLES

REQUIRE = os.environ.get("CAMPAIGN_REQUIRE_SPAMASSASSIN") == "1"
HIDDEN_TEXT = "HTML_FONT_LOW_CONTRAST"


@pytest.fixture(scope="module")
def spamassassin() -> str:
    found = shutil.which("spamassassin")
    if found:
        return found
    missing = "spamassassin is not installed (apt-get install spamassassin)"
    if REQUIRE:
        pytest.fail(f"CAMPAIGN_REQUIRE_SPAMASSASSIN=1 but {missing}", pytrace=False)
    pytest.skip(missing)


def scan(spamassassin: str, message: bytes, home: Path) -> tuple[float, set[str]]:
    """SpamAssassin's score for a message and the names of the rules it hit."""
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        [spamassassin, "-t", "-L", "-x", "--cf", "use_bayes 0"], input=message, capture_output=True,
        timeout=120, check=True, env={**os.environ, "HOME": str(home)})
    status = email.message_from_bytes(done.stdout, policy=email.policy.compat32)["X-Spam-Status"]
    assert status, done.stderr.decode(errors="replace")[-500:]
    status = " ".join(status.split())  # unfolded: "No, score=-1.0 required=5.0 tests=A, B,C autolearn=..."
    score = re.search(r"score=(-?[\d.]+)", status)
    tests = re.search(r"tests=((?:\w+,\s*)*\w+|none)", status)
    assert score and tests, status
    return float(score.group(1)), set(re.split(r",\s*", tests.group(1))) - {"none"}


def message(workspace: Workspace, built: Build) -> bytes:
    """One recipient's message, built as `campaign send` builds it."""
    personaliser = Personaliser(workspace, built.content, built.settings.slug, Tokens("a test secret"))
    return MessageFactory(personaliser, 1).build(sample_recipient())[1]


def _digest(workspace: Workspace) -> Build:
    new_campaign(workspace, "digest", [ARTICLES / "hydration.md", ARTICLES / "tea.html", ARTICLES / "sleep.txt"])
    return build_campaign(workspace, "digest")


def test_the_example_newsletter_and_a_digest_hide_nothing_spam_filters_score(
        spamassassin: str, workspace: Workspace, tmp_path: Path) -> None:
    for built in (build_campaign(workspace, "back-pain"), _digest(workspace)):
        score, hits = scan(spamassassin, message(workspace, built), tmp_path / "home")
        assert HIDDEN_TEXT not in hits, (built.settings.slug, score, sorted(hits))
        assert not {hit for hit in hits if "OBFU" in hit}, sorted(hits)  # the preheader's padding
        assert score < 1.0, (built.settings.slug, score, sorted(hits))


def test_a_preheader_hidden_by_colour_is_caught(spamassassin: str, workspace: Workspace, tmp_path: Path) -> None:
    """The check can fail: white text on the page, as mj-preview writes it, is scored."""
    built = build_campaign(workspace, "back-pain")
    html, count = re.subn(r'<div class="preheader" style="[^"]*"',
                          '<div style="display:none;font-size:1px;color:#ffffff;line-height:1px;max-height:0px;'
                          'max-width:0px;opacity:0;overflow:hidden;"', built.rendered.html)
    assert count == 1
    whited = replace(built, rendered=replace(built.rendered, html=html))
    _, hits = scan(spamassassin, message(workspace, whited), tmp_path / "home")
    assert HIDDEN_TEXT in hits
