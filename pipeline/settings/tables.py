"""TOML files read key by key: every error names its file, section and key, and every key of
campaign.toml may be overridden by an environment variable CAMPAIGN_<SECTION>_<KEY> (upper case,
other characters as "_"), so a server can keep addresses and secrets out of the files."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email

from pipeline.errors import ConfigError

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


class Table:
    """One TOML table read key by key, so every error names its file, section and key."""

    def __init__(self, data: Mapping[str, Any], path: Path, section: str | None) -> None:
        self.data = dict(data)
        self.path = path
        self.section = section
        self.used: set[str] = set()

    def where(self, key: str) -> str:
        """Where a key's value came from: the file, or the environment variable that overrides it."""
        place = f"{self.path}: [{self.section}] {key}" if self.section else f"{self.path}: {key}"
        if self.section and env_name(self.section, key) in os.environ:
            return f"{env_name(self.section, key)} (for {place})"
        return place

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
