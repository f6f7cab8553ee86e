"""`campaign archive`: the newsletters as a public website of static files.

A page for each send that has begun (its content is fixed, so the page shows what readers got) and
for each campaign marked `archive = true` (as it builds now: one sent some other way, say); none
for a campaign marked `archive = false`. Beside them an index (newest first), an Atom feed, a
sitemap, and in assets/ the articles' own images: those the pages show, those the messages of
every send show (a campaign without a page too: its emails fetch them from here), and those of
every campaign that builds now, so that publishing the archive before a send puts its images online.

The folder is built aside and swapped in whole, so a web server or an rsync never sees half of
it; the same sends and files give the same bytes. Everything it shows is in archive_pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.content.build import Content, build
from pipeline.content.compose import archive_path
from pipeline.content.images import stored
from pipeline.db.engine import Store
from pipeline.delivery.frozen import frozen
from pipeline.delivery.sends import all_sends
from pipeline.errors import CampaignError, ConfigError, FileError, SeveralErrors
from pipeline.files import staged_directory
from pipeline.settings.campaign import load_campaign
from pipeline.settings.workspace import Workspace
from pipeline.web.archive_pages import (
    Filler,
    Listed,
    email_page,
    feed,
    images_shown,
    index_page,
    sitemap,
)

ARCHIVE_DIR = Path("out") / "archive"  # in the workspace, unless --out says otherwise


@dataclass(frozen=True)
class Issue:
    """One page of the archive."""

    campaign: str
    path: str  # "back-pain/"
    content: Content
    at: datetime | None  # when its send began; None for a campaign archived without a send
    day: date | None


@dataclass(frozen=True)
class Written:
    folder: Path
    pages: int
    images: int


def default_folder(workspace: Workspace) -> Path:
    return workspace.root / ARCHIVE_DIR


def _day(moment: datetime, workspace: Workspace) -> date:
    try:
        zone = ZoneInfo(workspace.defaults.timezone) if workspace.defaults.timezone else None
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    return moment.astimezone(zone).date() if zone else moment.date()


def _archived(workspace: Workspace, slug: str) -> bool | None:
    """A campaign's `archive` setting; None (the default) also when its folder is gone or broken."""
    try:
        return load_campaign(workspace, slug).archive
    except CampaignError:
        return None


def issues(store: Store, workspace: Workspace, notes: list[str]) -> tuple[list[Issue], set[str]]:
    """The archive's pages, newest first, and the names of the images of every campaign that builds."""
    with store.reading() as conn:
        begun = [(send, frozen(conn, send.id)) for send in all_sends(conn) if send.snapshot_at is not None]
    found: list[Issue] = []
    names: set[str] = set()
    for send, content in begun:
        if content is None:
            continue
        if _archived(workspace, send.campaign) is False:
            # No page, but its messages show their pictures from the archive all the same.
            names.update(images_shown(content.html, workspace.archive.base_url or ""))
            continue
        at = send.started_at or send.snapshot_at
        assert at is not None
        path = archive_path(send.campaign, content.digest if send.occurrence else None)
        found.append(Issue(send.campaign, path, content, at, _day(at, workspace)))
    pages = {issue.path for issue in found}
    for slug in workspace.campaign_slugs():
        try:
            settings = load_campaign(workspace, slug)
        except CampaignError as exc:
            notes.append(f"{slug}: left out, it does not build: {exc}")
            continue
        if settings.recurrence:
            continue
        try:
            built = build(workspace, settings)
        except CampaignError as exc:
            has_page = settings.archive is not False and archive_path(slug) in pages
            left_out = "the images it shows now are left out" if settings.archive is False or has_page else "left out"
            notes.append(f"{slug}: {left_out}, it does not build: {exc}")
            continue
        names.update(asset.name for asset in built.rendered.newsletter.assets)
        if settings.archive and archive_path(slug) not in pages:
            try:
                content = built.require_clean().content
            except CampaignError as exc:
                notes.append(f"{slug}: left out: {exc}")
                continue
            article = built.rendered.newsletter.article
            found.append(Issue(slug, archive_path(slug), content, None, article.date if article else None))
    found.sort(key=lambda i: (i.day or date.min, i.at.timestamp() if i.at else 0.0, i.path), reverse=True)
    return found, names


def archive_files(store: Store, workspace: Workspace, notes: list[str]) -> tuple[dict[str, str | bytes], int, int]:
    """Every file of the archive by its path inside it, and how many pages and images it has."""
    fill = Filler(workspace)
    subscribe = f"{workspace.unsubscribe_url}/subscribe" if workspace.signup.enabled else None
    found, names = issues(store, workspace, notes)
    files: dict[str, str | bytes] = {}
    listed: list[Listed] = []
    for issue in found:
        html, shown = email_page(issue.content.html, workspace, issue.path, issue.content.preheader, subscribe)
        files[f"{issue.path}index.html"] = html
        names.update(shown)
        listed.append(Listed(issue.path, fill(issue.content.subject), fill(issue.content.preheader), issue.day,
                             issue.at))
    files["index.html"] = index_page(workspace, listed, subscribe)
    files["feed.xml"] = feed(workspace, listed)
    files["sitemap.xml"] = sitemap(workspace, listed)
    images = 0
    for name in sorted(names):
        data = stored(workspace, name)
        if data is None:
            notes.append(f"assets/{name}: not among the processed images (.campaign-assets); its page shows "
                         "it missing")
            continue
        files[f"assets/{name}"] = data
        images += 1
    return files, len(found), images


def write_archive(store: Store, workspace: Workspace, folder: Path | None = None, check: bool = False,
                  note: Callable[[str], None] | None = None) -> Written:
    """Build the archive aside and swap it in for `folder` (default out/archive). With `check`, it
    replaces the old one only if every link, image, page and the feed pass archive_check. What is
    left out, and why, is told to `note` as it is found."""
    if not workspace.archive.base_url:
        raise ConfigError("is not set: the archive needs the address it will be published at, such as "
                          "https://clinic.example/newsletter", where=f"{workspace.config_path}: [archive] base_url")
    folder = folder or default_folder(workspace)
    notes = _Notes(note)
    files, pages, images = archive_files(store, workspace, notes)
    if folder.exists() and (not folder.is_dir() or not _is_archive(folder)):
        raise FileError("is not an archive that `campaign archive` wrote; choose an empty or new folder with --out",
                        where=folder)
    with staged_directory(folder, replace=True) as scratch:
        for relative, data in sorted(files.items()):
            path = scratch / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        if check:
            from pipeline.web.archive_check import check_archive

            problems = check_archive(scratch, workspace.archive.base_url)
            if problems:
                raise SeveralErrors([*problems, f"{len(problems)} problem(s): {folder} was left as it was"])
    return Written(folder, pages, images)


class _Notes(list[str]):
    """A list of notes that also tells each one to a listener."""

    def __init__(self, listener: Callable[[str], None] | None) -> None:
        super().__init__()
        self.listener = listener

    def append(self, text: str) -> None:
        super().append(text)
        if self.listener is not None:
            self.listener(text)


def _is_archive(folder: Path) -> bool:
    """An archive this command wrote, or an empty folder: the only folders it may replace."""
    return not any(folder.iterdir()) or ((folder / "feed.xml").is_file() and (folder / "sitemap.xml").is_file())


