"""Each campaign's settings.toml, validated into typed, frozen settings."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from pipeline.errors import ConfigError, NotFoundError
from pipeline.files import within
from pipeline.settings.tables import SETTINGS_NAME, SLUG, Table, read_toml
from pipeline.settings.workspace import Tracking, Workspace, flag, read_tracking


@dataclass(frozen=True)
class CallToAction:
    text: str | None
    button: str
    url: str


@dataclass(frozen=True)
class ABTest:
    """[ab]: a subject test. `test_share` of the audience, split evenly between the subjects, gets
    the campaign first; after `wait`, the subject with the best `metric` goes to everyone else."""

    subjects: tuple[str, ...]
    test_share: float = 0.2
    wait: timedelta = timedelta(hours=4)
    metric: str = "clicks"  # or "opens": unique human readers per message sent


@dataclass(frozen=True)
class CampaignSettings:
    slug: str
    directory: Path
    subject: str
    preheader: str | None
    articles: tuple[Path, ...]
    template: str
    segment: str | None = None
    cta: CallToAction | None = None
    disclaimer: str | None = None
    read_more: str = "Read the full article"
    intro: str | None = None
    # A recurring digest: when (cron or "monthly on day 1 at 09:00"), from where, how many at most.
    recurrence: str | None = None
    source: str | None = None
    timezone: str | None = None
    max_articles: int = 10
    tracking: Tracking = field(default_factory=Tracking)  # the workspace's [tracking] with this campaign's over it
    ab: ABTest | None = None
    # In the public archive (`campaign archive`)? None: once it is sent; False: never; True: even unsent.
    archive: bool | None = None

    @property
    def path(self) -> Path:
        return self.directory / SETTINGS_NAME


_CAMPAIGN_KEYS = {"subject", "preheader", "articles", "template", "segment", "cta", "disclaimer",
                  "read_more", "intro", "recurrence", "source", "timezone", "max_articles",
                  "tracking", "ab", "archive"}
_WAIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|seconds?|m|min|minutes?|h|hours?|d|days?)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
METRICS = ("clicks", "opens")


def _ab(table: Table, tracking: Tracking, recurring: bool) -> ABTest:
    subjects = table.strings("subjects")
    if len(subjects) < 2 or len(subjects) > 26 or len(set(subjects)) != len(subjects):
        raise ConfigError("needs 2 to 26 different subjects", where=table.where("subjects"))
    if any("\n" in s or "\r" in s for s in subjects):
        raise ConfigError("each subject must be a single line", where=table.where("subjects"))
    share = table.raw("test_share", ABTest.test_share)
    try:
        share = float(share) if not isinstance(share, bool) else None
    except (TypeError, ValueError):
        share = None
    if share is None or not 0 < share < 1:
        raise ConfigError(f"{table.raw('test_share')!r} is not a share between 0 and 1, such as 0.2",
                          where=table.where("test_share"))
    wait_text = table.raw("wait", "4h")
    found = _WAIT.match(wait_text) if isinstance(wait_text, str) else None
    if found is None:
        raise ConfigError(f"{wait_text!r} is not a wait like \"4h\", \"90m\" or \"1d\"", where=table.where("wait"))
    wait = timedelta(seconds=float(found.group(1)) * _UNIT[found.group(2)[0]])
    if wait > timedelta(days=30):
        raise ConfigError("is longer than 30 days", where=table.where("wait"))
    metric = table.text("metric", ABTest.metric) or ABTest.metric
    if metric not in METRICS:
        raise ConfigError(f"{metric!r} is not one of {', '.join(METRICS)}", where=table.where("metric"))
    if not getattr(tracking, metric):
        raise ConfigError(f"picking the winner by {metric} needs [tracking] {metric} = true",
                          where=table.where("metric"))
    if recurring:
        raise ConfigError("a recurring campaign cannot test subjects", where=table.where("subjects"))
    table.check_unknown({"subjects", "test_share", "wait", "metric"})
    return ABTest(subjects, share, wait, metric)


def check_slug(slug: str) -> str:
    if not SLUG.match(slug):
        raise ConfigError(
            f"campaign name {slug!r} must use only lowercase letters, digits and single hyphens, "
            "like 'back-pain-2026'"
        )
    return slug


def _inside(workspace: Workspace, path: Path, where: str) -> Path:
    """A file the campaign names, refused unless it is in the workspace once symlinks are followed."""
    if within(workspace.root, path) is None:
        raise ConfigError(f"{str(path)!r} is outside the workspace {workspace.root}; copy it into the campaign's "
                          "folder (campaign new does)", where=where)
    return path


def load_campaign(workspace: Workspace, slug: str) -> CampaignSettings:
    """Read campaigns/SLUG/settings.toml; an unknown campaign names the ones that exist."""
    check_slug(slug)
    directory = workspace.campaign_dir(slug)
    path = directory / SETTINGS_NAME
    if not path.is_file():
        known = ", ".join(workspace.campaign_slugs()) or "none yet; create one with 'campaign new'"
        raise NotFoundError(f"no campaign {slug!r} in {workspace.campaigns_dir} (known: {known})")
    table = Table(read_toml(path), path, None)
    table.check_unknown(_CAMPAIGN_KEYS)
    articles = table.strings("articles")
    recurrence, source = table.text("recurrence"), table.text("source")
    if bool(recurrence) != bool(source):
        raise ConfigError("a recurring campaign needs both 'recurrence' and 'source'",
                          where=table.where("recurrence" if source else "source"))
    if not articles and not source:
        raise ConfigError("must name at least one article file", where=table.where("articles"))
    template = table.text("template") or ("newsletter" if len(articles) == 1 and not source else "digest")
    max_articles = table.raw("max_articles", 10)
    if not isinstance(max_articles, int) or isinstance(max_articles, bool) or not 1 <= max_articles <= 50:
        raise ConfigError(f"{max_articles!r} is not a number of articles from 1 to 50", where=table.where("max_articles"))
    if not re.match(r"^[A-Za-z0-9_-]+$", template):
        raise ConfigError(f"{template!r} is not a template name like 'newsletter'", where=table.where("template"))
    cta = None
    cta_data = table.table("cta")
    if cta_data:
        cta_t = Table(cta_data, path, "cta")
        cta = CallToAction(
            text=cta_t.text("text", one_line=False),
            button=cta_t.text("button", required=True) or "",
            url=cta_t.url("url", required=True) or "",
        )
        cta_t.check_unknown({"text", "button", "url"})
    tracking = read_tracking(Table(table.table("tracking"), path, "tracking"), workspace.tracking)
    ab_data = table.table("ab")
    ab = _ab(Table(ab_data, path, "ab"), tracking, bool(recurrence)) if ab_data else None
    return CampaignSettings(
        slug=slug,
        directory=directory,
        subject=table.text("subject", required=True) or "",
        preheader=table.text("preheader"),
        articles=tuple(_inside(workspace, directory / a, table.where("articles")) for a in articles),
        template=template,
        segment=table.text("segment", one_line=False),
        cta=cta,
        disclaimer=table.text("disclaimer", one_line=False),
        read_more=table.text("read_more", CampaignSettings.read_more) or CampaignSettings.read_more,
        intro=table.text("intro", one_line=False),
        recurrence=recurrence,
        source=source if source is None or re.match(r"^https?://", source) else
        str(_inside(workspace, directory / source, table.where("source"))),
        timezone=table.text("timezone"),
        max_articles=max_articles,
        tracking=tracking,
        ab=ab,
        archive=None if table.raw("archive") is None else flag(table, "archive", False),
    )
