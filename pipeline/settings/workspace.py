"""The workspace's campaign.toml, validated into typed, frozen settings."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.settings.signup import Signup, read_signup
from pipeline.settings.tables import CONFIG_NAME, SETTINGS_NAME, SLUG, Table, read_toml


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
class Workers:
    """[workers]: with a broker, sends are handed in batches to `campaign worker` processes."""

    broker: str | None = None  # "redis://127.0.0.1:6379/0"; None: every send runs in its own process
    batch: int = 500  # deliveries per task
    # Seconds the broker waits for a task's acknowledgement before giving it to another worker, and
    # how long a batch handed to the broker may wait before the tick hands it out again.
    visibility_timeout: int = 900
    window: int = 16  # batches of one send out with the broker or the workers at once


TRACKING_NOTICE = "We count opens and link clicks of this newsletter to learn what our readers find useful."


@dataclass(frozen=True)
class Tracking:
    """[tracking]: open and click tracking, off unless turned on (see pipeline.engagement). A
    campaign's settings.toml may override each key; readers with a no-tracking tag or field are
    never tracked."""

    opens: bool = False  # an open pixel in each copy
    clicks: bool = False  # links rewritten to signed per-message redirects
    notice: str = TRACKING_NOTICE  # said in the footer of tracked copies; "" says nothing

    @property
    def on(self) -> bool:
        return self.opens or self.clicks


@dataclass(frozen=True)
class Archive:
    """[archive]: where `campaign archive` publishes the newsletters (see pipeline.web.archive)."""

    base_url: str | None = None  # "https://clinic.example/newsletter"; None: no public archive
    title: str | None = None  # the archive's heading and feed title; None: "<brand> newsletter"


@dataclass(frozen=True)
class Images:
    """[images]: what happens to an article's own image files (see pipeline.content.images)."""

    embed: bool = False  # attach them to each message (cid:) instead of linking to the archive's copies


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
    workers: Workers = Workers()
    signup: Signup = field(default_factory=Signup)  # [signup]: the form at /subscribe (settings.signup)
    tracking: Tracking = Tracking()
    archive: Archive = Archive()
    images: Images = Images()

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


def _font_family(table: Table) -> str:
    # It is written into a stylesheet, so only what a font list needs is allowed.
    value = table.text("font_family", Brand.font_family) or Brand.font_family
    if not re.match(r"^[\w\s,'\"-]+$", value):
        raise ConfigError(f"{value!r} is not a font list like 'Georgia, serif'", where=table.where("font_family"))
    return value


_SECTIONS = {"brand", "sender", "unsubscribe", "defaults", "segments", "sending", "topics", "bounces", "workers",
             "signup", "tracking", "archive", "images"}
RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")


def _host(url: str) -> str:
    return re.sub(r"^https?://", "", url).split("/")[0].split(":")[0].lower()


def _sending(table: Table, root: Path, brand: Brand, sender: Sender) -> Sending:
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


def _topics(table: Table) -> dict[str, str]:
    topics: dict[str, str] = {}
    for tag in table.data:
        # A topic is a subscriber tag, so it follows the tags' rules: no commas, at most 100 characters.
        if tag != tag.strip() or not _TOPIC_TAG.match(tag):
            raise ConfigError("topic tags are 1 to 100 characters, without commas or surrounding spaces",
                              where=table.where(tag))
        topics[tag] = table.text(tag, required=True) or ""
    return topics


def _bounces(table: Table) -> Bounces:
    limit = table.raw("soft_limit", Bounces.soft_limit)
    if isinstance(limit, str) and limit.strip().isdigit():  # from the environment
        limit = int(limit)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ConfigError(f"{limit!r} is not a whole number of at least 1", where=table.where("soft_limit"))
    table.check_unknown({"soft_limit"})
    return Bounces(soft_limit=limit)


def _whole(table: Table, key: str, default: int, low: int, high: int, what: str) -> int:
    value = table.raw(key, default)
    if isinstance(value, str) and value.strip().isdigit():  # from the environment
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{value!r} is not {what} from {low:,} to {high:,}", where=table.where(key))
    return value


_BROKER = re.compile(r"^(redis|rediss|amqp|amqps)://\S*$")


def _workers(table: Table) -> Workers:
    broker = table.text("broker")
    if broker is not None and not _BROKER.match(broker):
        raise ConfigError(f"{broker!r} is not a broker URL like redis://127.0.0.1:6379/0 or amqp://host//",
                          where=table.where("broker"))
    workers = Workers(
        broker=broker,
        batch=_whole(table, "batch", Workers.batch, 1, 100_000, "a number of deliveries"),
        visibility_timeout=_whole(table, "visibility_timeout", Workers.visibility_timeout, 4, 7 * 86400,
                                  "a number of seconds"),
        window=_whole(table, "window", Workers.window, 1, 10_000, "a number of batches"),
    )
    table.check_unknown({"broker", "batch", "visibility_timeout", "window"})
    return workers


_FLAGS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False, "on": True, "off": False}


def flag(table: Table, key: str, default: bool) -> bool:
    """A true/false key; from the environment, "true", "false", "1", "0", "yes", "no", "on" or "off"."""
    value = table.raw(key, default)
    if isinstance(value, str) and value.strip().lower() in _FLAGS:
        value = _FLAGS[value.strip().lower()]
    if not isinstance(value, bool):
        raise ConfigError(f"{value!r} is not true or false", where=table.where(key))
    return value


def read_tracking(table: Table, base: Tracking) -> Tracking:
    """A [tracking] table over `base`: campaign.toml's over the defaults, a campaign's over the workspace's."""
    notice = table.raw("notice", base.notice)
    if not isinstance(notice, str) or "\r" in notice or "\n" in notice:
        raise ConfigError("must be one line of text (\"\" for none)", where=table.where("notice"))
    tracking = Tracking(opens=flag(table, "opens", base.opens), clicks=flag(table, "clicks", base.clicks),
                        notice=notice.strip())
    table.check_unknown({"opens", "clicks", "notice"})
    return tracking


def _archive(table: Table) -> Archive:
    base_url = table.url("base_url")
    archive = Archive(base_url=base_url.rstrip("/") if base_url else None, title=table.text("title"))
    table.check_unknown({"base_url", "title"})
    return archive


def _images(table: Table) -> Images:
    images = Images(embed=flag(table, "embed", Images.embed))
    table.check_unknown({"embed"})
    return images


def load_workspace(root: Path) -> Workspace:
    """Read and check root/campaign.toml."""
    path = root / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(
            f"no {CONFIG_NAME} here: run 'campaign init DIR' or pass --workspace DIR", where=root
        )
    data = read_toml(path)
    top = Table(data, path, None)
    top.check_unknown(_SECTIONS)
    brand_t = Table(top.table("brand"), path, "brand")
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

    sender_t = Table(top.table("sender"), path, "sender")
    sender = Sender(
        from_name=sender_t.text("from_name", brand.name) or brand.name,
        from_address=sender_t.email("from_address", required=True) or "",
        reply_to=sender_t.email("reply_to"),
    )
    sender_t.check_unknown({"from_name", "from_address", "reply_to"})

    unsub_t = Table(top.table("unsubscribe"), path, "unsubscribe")
    unsubscribe_url = (unsub_t.url("base_url", required=True) or "").rstrip("/")
    mailto = unsub_t.email("mailto")
    unsub_t.check_unknown({"base_url", "mailto"})

    defaults_t = Table(top.table("defaults"), path, "defaults")
    defaults = Defaults(
        timezone=defaults_t.text("timezone"),
        first_name_fallback=defaults_t.text("first_name_fallback", Defaults.first_name_fallback) or "",
        reason=defaults_t.text("reason", Defaults.reason) or Defaults.reason,
        disclaimer=defaults_t.text("disclaimer", one_line=False),
        utm_source=defaults_t.text("utm_source", Defaults.utm_source) or Defaults.utm_source,
    )
    defaults_t.check_unknown({f for f in Defaults.__dataclass_fields__})

    segments_t = Table(top.table("segments"), path, "segments")
    segments: dict[str, str] = {}
    for name in segments_t.data:
        if not SLUG.match(name):
            raise ConfigError("segment names use lowercase letters, digits and hyphens", where=segments_t.where(name))
        segments[name] = segments_t.text(name, required=True, one_line=False) or ""
    sending = _sending(Table(top.table("sending"), path, "sending"), root, brand, sender)
    return Workspace(root, brand, sender, unsubscribe_url, mailto, defaults, segments, sending,
                     topics=_topics(Table(top.table("topics"), path, "topics")),
                     bounces=_bounces(Table(top.table("bounces"), path, "bounces")),
                     workers=_workers(Table(top.table("workers"), path, "workers")),
                     signup=read_signup(Table(top.table("signup"), path, "signup"), brand.name, "signup" in data),
                     tracking=read_tracking(Table(top.table("tracking"), path, "tracking"), Tracking()),
                     archive=_archive(Table(top.table("archive"), path, "archive")),
                     images=_images(Table(top.table("images"), path, "images")))
