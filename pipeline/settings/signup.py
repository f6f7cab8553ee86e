"""campaign.toml's [signup]: the public signup form of `campaign serve` (see audience.signup)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pipeline.errors import ConfigError
from pipeline.settings.tables import SLUG, Table

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(?::\d{1,5})?$")
_VERSION = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_KEYS = {"enabled", "double_opt_in", "confirm_days", "allowed_origins", "consent_text", "consent_version",
         "welcome", "confirm_subject", "heading", "intro", "per_ip_per_hour", "per_address_per_day"}


@dataclass(frozen=True)
class Signup:
    """What /subscribe offers and how it guards itself. Without a [signup] section there is no form."""

    enabled: bool = False
    double_opt_in: bool = True
    confirm_days: int = 7  # how long a confirmation link works
    allowed_origins: tuple[str, ...] = ()  # other sites whose pages may post to /subscribe (CORS)
    consent_text: str = "I would like to receive the newsletter by email. I can unsubscribe at any time."
    consent_version: str = ""  # empty: a short hash of consent_text, so every new wording is a new version
    welcome: str | None = None  # a campaign folder sent once to each newly confirmed subscriber
    confirm_subject: str = "Please confirm your subscription"
    heading: str = "Subscribe to our newsletter"
    intro: str | None = None
    per_ip_per_hour: int = 20  # signup requests from one client address
    per_address_per_day: int = 5  # confirmation emails to one address

    @property
    def version(self) -> str:
        return self.consent_version or "sha256:" + hashlib.sha256(self.consent_text.encode("utf-8")).hexdigest()[:12]


def _flag(table: Table, key: str, default: bool) -> bool:
    value = table.raw(key, default)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        value = value.strip().lower() in ("true", "1", "yes")  # from the environment
    if not isinstance(value, bool):
        raise ConfigError(f"{value!r} is not true or false", where=table.where(key))
    return value


def _whole(table: Table, key: str, default: int, low: int, high: int) -> int:
    value = table.raw(key, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{value!r} is not a whole number from {low:,} to {high:,}", where=table.where(key))
    return value


def read_signup(table: Table, brand_name: str, present: bool) -> Signup:
    """The [signup] table; `present` is whether campaign.toml has one (the form is on only then,
    unless enabled says otherwise)."""
    origins = []
    for origin in table.strings("allowed_origins"):
        cleaned = origin.strip().rstrip("/")
        if not _ORIGIN.match(cleaned):
            raise ConfigError(f"{origin!r} is not an origin like https://clinic.example (scheme, host and an "
                              "optional port; no path)", where=table.where("allowed_origins"))
        origins.append(cleaned.lower())
    version = table.text("consent_version") or ""
    if version and not _VERSION.match(version):
        raise ConfigError(f"{version!r} is not a version like 2026-01 (letters, digits, '.', '_', ':', '-')",
                          where=table.where("consent_version"))
    welcome = table.text("welcome")
    if welcome is not None and not SLUG.match(welcome):
        raise ConfigError(f"{welcome!r} is not a campaign name like 'welcome'", where=table.where("welcome"))
    signup = Signup(
        enabled=_flag(table, "enabled", present),
        double_opt_in=_flag(table, "double_opt_in", Signup.double_opt_in),
        confirm_days=_whole(table, "confirm_days", Signup.confirm_days, 1, 365),
        allowed_origins=tuple(origins),
        consent_text=table.text("consent_text", one_line=False) or Signup.consent_text,
        consent_version=version,
        welcome=welcome,
        confirm_subject=table.text("confirm_subject") or f"Please confirm your subscription to {brand_name}",
        heading=table.text("heading") or f"Subscribe to the {brand_name} newsletter",
        intro=table.text("intro", one_line=False),
        per_ip_per_hour=_whole(table, "per_ip_per_hour", Signup.per_ip_per_hour, 1, 1_000_000),
        per_address_per_day=_whole(table, "per_address_per_day", Signup.per_address_per_day, 1, 1000),
    )
    table.check_unknown(_KEYS)
    return signup
