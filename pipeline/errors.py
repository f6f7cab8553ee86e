"""One error family, declared together: library code raises these, the command line renders them once.

Every message is one line that names where the problem is (a file, a line, a row, a setting),
so the person who can fix it knows where to look.
"""

from __future__ import annotations

from pathlib import Path


class CampaignError(Exception):
    """A problem the user can fix; its message is one line naming where the problem is."""

    exit_code = 1
    label = "error"  # "campaign: error: ..."

    def __init__(self, message: str, *, where: str | Path | None = None) -> None:
        self.where = str(where) if where is not None else None
        super().__init__(f"{self.where}: {message}" if self.where else message)

    @property
    def lines(self) -> list[str]:
        return [str(self)]


class SeveralErrors(CampaignError):
    """Independent parts of one command failed (campaigns in one tick): one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems

    @property
    def lines(self) -> list[str]:
        return list(self.problems)


class Interrupted(CampaignError):
    """Stopped by Ctrl-C or SIGTERM after the work in flight; exit status 130, as shells report it."""

    exit_code = 130
    label = "stopped"


# Workspace, settings and files

class ConfigError(CampaignError):
    """campaign.toml or a campaign's settings.toml is missing or wrong."""


class FileError(CampaignError):
    """A file or folder the user named cannot be read or written."""


class NotFoundError(CampaignError):
    """A named campaign, template, subscriber or segment does not exist."""


class StoreError(CampaignError):
    """The database cannot be opened, is full, or is of a version this program does not know."""


# Content

class ArticleError(CampaignError):
    """An article cannot be read: missing, empty, binary or not decodable."""


class TemplateError(CampaignError):
    """A Jinja template is missing or broken, or the MJML it produced does not compile."""


class LintFailed(CampaignError):
    """The rendered email has lint errors (or warnings under --strict)."""


# Audience

class SubscriberError(CampaignError):
    """A subscriber operation that cannot be done as asked."""


class ImportFailed(CampaignError):
    """The file as a whole cannot be imported; nothing was changed."""


class SegmentError(CampaignError):
    """A segment expression that cannot be used; the message names the column of the problem."""


class InvalidToken(CampaignError):
    """A link token that is malformed, tampered with, too old, or for a reader who is gone."""


# Delivery

class SendError(CampaignError):
    """A send cannot start or go on as asked."""


class MessageError(CampaignError):
    """A message cannot be built as configured (for example, a DKIM key that does not load)."""


class TransportError(CampaignError):
    """The transport cannot be used at all: a bad URL, an unreachable server, refused login."""


class BounceError(CampaignError):
    """A bounce file or folder that cannot be read at all."""


# Timing

class ScheduleError(CampaignError):
    """A schedule that cannot be kept: a time in the past, a wall time that does not exist."""


class RecurrenceError(CampaignError):
    """A recurrence that cannot be understood."""


class RecurringError(CampaignError):
    """A recurring campaign that cannot be started or run."""


class SourceError(CampaignError):
    """A digest's source cannot be read."""


# The web side

class BrowserError(CampaignError):
    """Headless Chromium, needed for screenshots and page checks, is missing or would not start."""


class ServerError(CampaignError):
    """A local web server cannot listen where it was asked to."""
