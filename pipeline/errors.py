"""One error family: library code raises these, the command line renders them once."""

from __future__ import annotations

from pathlib import Path


class CampaignError(Exception):
    """A problem the user can fix; its message is one line naming where the problem is."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | Path | None = None) -> None:
        self.where = str(where) if where is not None else None
        super().__init__(f"{self.where}: {message}" if self.where else message)


class ConfigError(CampaignError):
    """campaign.toml or a campaign's settings.toml is missing or wrong."""


class ArticleError(CampaignError):
    """An article cannot be read: missing, empty, binary or not decodable."""


class TemplateError(CampaignError):
    """A Jinja template is missing or broken, or the MJML it produced does not compile."""


class NotFoundError(CampaignError):
    """A named campaign, template, subscriber or segment does not exist."""


class LintFailed(CampaignError):
    """The rendered email has lint errors (or warnings under --strict)."""


class BrowserError(CampaignError):
    """Headless Chromium, needed for screenshots, is missing or would not start."""
