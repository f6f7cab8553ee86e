"""The workspace's campaign.toml and each campaign's settings.toml, validated into typed settings.

Every key of campaign.toml may be overridden by an environment variable
CAMPAIGN_<SECTION>_<KEY> (upper case, other characters as "_"), so a server can keep
addresses and secrets out of the files.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email

from pipeline.errors import ConfigError, NotFoundError

CONFIG_NAME = "campaign.toml"
SETTINGS_NAME = "settings.toml"
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_HEADER_BREAK = re.compile(r"[\r\n\x00]")


def env_name(section: str, key: str) -> str:
    return "CAMPAIGN_" + re.sub(r"[^A-Z0-9]", "_", f"{section}_{key}".upper())


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("no such file", where=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=path) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", where=path) from None


class _Table:
    """One TOML table read key by key, so every error names its file, section and key."""

    def __init__(self, data: Mapping[str, Any], path: Path, section: str | None) -> None:
        self.data = dict(data)
        self.path = path
        self.section = section
        self.used: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.path}: [{self.section}] {key}" if self.section else f"{self.path}: {key}"

    def raw(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        if self.section:
            override = os.environ.get(env_name(self.section, key))
            if override is not None:
                return override
        return self.data.get(key, default)

    def text(self, key: str, default: str | None = None, *, required: bool = False,
             one_line: bool = True) -> str | None:
        value = self.raw(key, default)
        if value is None or value == "":
            if required:
                raise ConfigError("is required", where=self.where(key))
            return default
        if not isinstance(value, str):
            raise ConfigError(f"must be a string, not {type(value).__name__}", where=self.where(key))
        value = value.strip()
        if one_line and _HEADER_BREAK.search(value):
            raise ConfigError("must be a single line", where=self.where(key))
        return value

    def color(self, key: str, default: str) -> str:
        value = self.text(key, default) or default
        if not _COLOR.match(value):
            raise ConfigError(f"{value!r} is not a colour like #1a73e8", where=self.where(key))
        return value

    def url(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.text(key, default, required=required)
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ConfigError(f"{value!r} is not a web address starting with https://", where=self.where(key))
        return value

    def email(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.text(key, default, required=required)
        if value is None:
            return None
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ConfigError(f"{value!r} is not an e-mail address ({exc})", where=self.where(key)) from None

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.raw(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError("must be a list of strings", where=self.where(key))
        return tuple(v for v in value if v.strip())

    def table(self, key: str) -> Mapping[str, Any]:
        value = self.raw(key, {})
        if not isinstance(value, dict):
            raise ConfigError("must be a table", where=self.where(key))
        return value

    def check_unknown(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.data) - allowed)
        if unknown:
            raise ConfigError(
                f"unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})",
                where=self.where(unknown[0]) if self.section else self.path,
            )


@dataclass(frozen=True)
class Brand:
    name: str
    address: str
    website: str
    logo_url: str | None = None
    logo_width: int = 160
    primary_color: str = "#1f6f5c"
    accent_color: str = "#c8553d"
    background_color: str = "#f4f1ea"
    text_color: str = "#22313f"
    font_family: str = "Helvetica, Arial, sans-serif"
    language: str = "en"
    fonts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sender:
    from_name: str
    from_address: str
    reply_to: str | None = None


@dataclass(frozen=True)
class Defaults:
    timezone: str | None = None
    first_name_fallback: str = "there"
    reason: str = "You receive this email because you subscribed to our newsletter."
    disclaimer: str | None = None
    utm_source: str = "newsletter"


@dataclass(frozen=True)
class Sending:
    list_id: str  # "Description <id.domain>" for the List-Id header
    return_path: str  # the envelope sender, where bounces go
    dkim_selector: str | None = None
    dkim_key: Path | None = None
    utm_domains: tuple[str, ...] = ()  # links to these hosts get UTM parameters
    concurrency: int = 4
    rate: str | None = None  # "50/s" or "1000/h"


@dataclass(frozen=True)
class Bounces:
    # A full mailbox or a server down for a day clears up by itself; an address that soft-bounced
    # on this many sends is as good as dead.
    soft_limit: int = 3


@dataclass(frozen=True)
class Workspace:
    root: Path
    brand: Brand
    sender: Sender
    unsubscribe_url: str
    unsubscribe_mailto: str | None
    defaults: Defaults
    segments: Mapping[str, str]
    sending: Sending
    # Tags a reader may choose on the preferences page, in campaign.toml's order: tag -> label.
    topics: Mapping[str, str] = field(default_factory=dict)
    bounces: Bounces = Bounces()

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def campaigns_dir(self) -> Path:
        return self.root / "campaigns"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    def campaign_dir(self, slug: str) -> Path:
        return self.campaigns_dir / slug

    def campaign_slugs(self) -> list[str]:
        if not self.campaigns_dir.is_dir():
            return []
        return sorted(p.name for p in self.campaigns_dir.iterdir() if (p / SETTINGS_NAME).is_file())


def _font_family(table: _Table) -> str:
    # It is written into a stylesheet, so only what a font list needs is allowed.
    value = table.text("font_family", Brand.font_family) or Brand.font_family
    if not re.match(r"^[\w\s,'\"-]+$", value):
        raise ConfigError(f"{value!r} is not a font list like 'Georgia, serif'", where=table.where("font_family"))
    return value


_SECTIONS = {"brand", "sender", "unsubscribe", "defaults", "segments", "sending", "topics", "bounces"}
RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")


def _host(url: str) -> str:
    return re.sub(r"^https?://", "", url).split("/")[0].split(":")[0].lower()


def _sending(table: _Table, root: Path, brand: Brand, sender: Sender) -> Sending:
    domain = sender.from_address.rsplit("@", 1)[1]
    list_id = table.text("list_id") or f"{brand.name} <newsletter.{domain}>"
    if not re.match(r"^[^<>]*<[A-Za-z0-9.-]+\.[A-Za-z0-9-]+>$", list_id):
        raise ConfigError(f"{list_id!r} is not a list id like 'Clinic news <news.clinic.example>'",
                          where=table.where("list_id"))
    selector = table.text("dkim_selector")
    key_name = table.text("dkim_key")
    if bool(selector) != bool(key_name):
        raise ConfigError("set both dkim_selector and dkim_key, or neither", where=table.where("dkim_selector"))
    key = (root / key_name) if key_name else None
    if key is not None and not key.is_file():
        raise ConfigError(f"no DKIM private key at {key}", where=table.where("dkim_key"))
    rate = table.text("rate")
    if rate is not None and not RATE.match(rate):
        raise ConfigError(f"{rate!r} is not a rate like '50/s' or '1000/h'", where=table.where("rate"))
    concurrency = table.raw("concurrency", 4)
    try:
        concurrency = int(concurrency)
        if not 1 <= concurrency <= 64:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{concurrency!r} is not a number of connections from 1 to 64",
                          where=table.where("concurrency")) from None
    domains = table.strings("utm_domains") or (_host(brand.website),)
    sending = Sending(
        list_id=list_id,
        return_path=table.email("return_path") or sender.from_address,
        dkim_selector=selector, dkim_key=key,
        utm_domains=tuple(d.lower() for d in domains), concurrency=concurrency, rate=rate,
    )
    table.check_unknown({"list_id", "return_path", "dkim_selector", "dkim_key", "utm_domains", "concurrency", "rate"})
    return sending
_TOPIC_TAG = re.compile(r"^[^\x00-\x1f\x7f,]{1,100}$")


def _topics(table: _Table) -> dict[str, str]:
    topics: dict[str, str] = {}
    for tag in table.data:
        # A topic is a subscriber tag, so it follows the tags' rules: no commas, at most 100 characters.
        if tag != tag.strip() or not _TOPIC_TAG.match(tag):
            raise ConfigError("topic tags are 1 to 100 characters, without commas or surrounding spaces",
                              where=table.where(tag))
        topics[tag] = table.text(tag, required=True) or ""
    return topics


def _bounces(table: _Table) -> Bounces:
    limit = table.raw("soft_limit", Bounces.soft_limit)
    if isinstance(limit, str) and limit.strip().isdigit():  # from the environment
        limit = int(limit)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ConfigError(f"{limit!r} is not a whole number of at least 1", where=table.where("soft_limit"))
    table.check_unknown({"soft_limit"})
    return Bounces(soft_limit=limit)


def load_workspace(root: Path) -> Workspace:
    """Read and check root/campaign.toml."""
    path = root / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(
            f"no {CONFIG_NAME} here: run 'campaign init DIR' or pass --workspace DIR", where=root
        )
    data = read_toml(path)
    top = _Table(data, path, None)
    top.check_unknown(_SECTIONS)
    brand_t = _Table(top.table("brand"), path, "brand")
    fonts = brand_t.table("fonts")
    if not all(isinstance(v, str) for v in fonts.values()):
        raise ConfigError("must map font names to stylesheet URLs", where=brand_t.where("fonts"))
    logo_width = brand_t.raw("logo_width", 160)
    try:
        logo_width = int(logo_width)
    except (TypeError, ValueError):
        raise ConfigError(f"{logo_width!r} is not a number of pixels", where=brand_t.where("logo_width")) from None
    brand = Brand(
        name=brand_t.text("name", required=True) or "",
        address=brand_t.text("address", required=True) or "",
        website=brand_t.url("website", required=True) or "",
        logo_url=brand_t.url("logo_url"),
        logo_width=logo_width,
        primary_color=brand_t.color("primary_color", Brand.primary_color),
        accent_color=brand_t.color("accent_color", Brand.accent_color),
        background_color=brand_t.color("background_color", Brand.background_color),
        text_color=brand_t.color("text_color", Brand.text_color),
        font_family=_font_family(brand_t),
        language=brand_t.text("language", "en") or "en",
        fonts=dict(fonts),
    )
    brand_t.check_unknown({f for f in Brand.__dataclass_fields__})

    sender_t = _Table(top.table("sender"), path, "sender")
    sender = Sender(
        from_name=sender_t.text("from_name", brand.name) or brand.name,
        from_address=sender_t.email("from_address", required=True) or "",
        reply_to=sender_t.email("reply_to"),
    )
    sender_t.check_unknown({"from_name", "from_address", "reply_to"})

    unsub_t = _Table(top.table("unsubscribe"), path, "unsubscribe")
    unsubscribe_url = (unsub_t.url("base_url", required=True) or "").rstrip("/")
    mailto = unsub_t.email("mailto")
    unsub_t.check_unknown({"base_url", "mailto"})

    defaults_t = _Table(top.table("defaults"), path, "defaults")
    defaults = Defaults(
        timezone=defaults_t.text("timezone"),
        first_name_fallback=defaults_t.text("first_name_fallback", Defaults.first_name_fallback) or "",
        reason=defaults_t.text("reason", Defaults.reason) or Defaults.reason,
        disclaimer=defaults_t.text("disclaimer", one_line=False),
        utm_source=defaults_t.text("utm_source", Defaults.utm_source) or Defaults.utm_source,
    )
    defaults_t.check_unknown({f for f in Defaults.__dataclass_fields__})

    segments_t = _Table(top.table("segments"), path, "segments")
    segments: dict[str, str] = {}
    for name in segments_t.data:
        if not SLUG.match(name):
            raise ConfigError("segment names use lowercase letters, digits and hyphens", where=segments_t.where(name))
        segments[name] = segments_t.text(name, required=True, one_line=False) or ""
    sending = _sending(_Table(top.table("sending"), path, "sending"), root, brand, sender)
    return Workspace(root, brand, sender, unsubscribe_url, mailto, defaults, segments, sending,
                     topics=_topics(_Table(top.table("topics"), path, "topics")),
                     bounces=_bounces(_Table(top.table("bounces"), path, "bounces")))


@dataclass(frozen=True)
class CallToAction:
    text: str | None
    button: str
    url: str


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

    @property
    def path(self) -> Path:
        return self.directory / SETTINGS_NAME


_CAMPAIGN_KEYS = {"subject", "preheader", "articles", "template", "segment", "cta", "disclaimer",
                  "read_more", "intro", "recurrence", "source", "timezone", "max_articles"}


def check_slug(slug: str) -> str:
    if not SLUG.match(slug):
        raise ConfigError(
            f"campaign name {slug!r} must use only lowercase letters, digits and single hyphens, "
            "like 'back-pain-2026'"
        )
    return slug


def load_campaign(workspace: Workspace, slug: str) -> CampaignSettings:
    """Read campaigns/SLUG/settings.toml; an unknown campaign names the ones that exist."""
    check_slug(slug)
    directory = workspace.campaign_dir(slug)
    path = directory / SETTINGS_NAME
    if not path.is_file():
        known = ", ".join(workspace.campaign_slugs()) or "none yet; create one with 'campaign new'"
        raise NotFoundError(f"no campaign {slug!r} in {workspace.campaigns_dir} (known: {known})")
    table = _Table(read_toml(path), path, None)
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
        cta_t = _Table(cta_data, path, "cta")
        cta = CallToAction(
            text=cta_t.text("text", one_line=False),
            button=cta_t.text("button", required=True) or "",
            url=cta_t.url("url", required=True) or "",
        )
        cta_t.check_unknown({"text", "button", "url"})
    return CampaignSettings(
        slug=slug,
        directory=directory,
        subject=table.text("subject", required=True) or "",
        preheader=table.text("preheader"),
        articles=tuple(directory / a for a in articles),
        template=template,
        segment=table.text("segment", one_line=False),
        cta=cta,
        disclaimer=table.text("disclaimer", one_line=False),
        read_more=table.text("read_more", CampaignSettings.read_more) or CampaignSettings.read_more,
        intro=table.text("intro", one_line=False),
        recurrence=recurrence,
        source=source,
        timezone=table.text("timezone"),
        max_articles=max_articles,
    )
