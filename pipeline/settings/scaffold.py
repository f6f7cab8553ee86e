"""Creating workspaces and campaigns on disk, each in one step: built aside, then renamed into place."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from pipeline.audience.tokens import create_secret
from pipeline.content.compose import default_preheader
from pipeline.content.images import own_pictures
from pipeline.content.models import Article
from pipeline.content.readers import read_article
from pipeline.errors import CampaignError, ConfigError
from pipeline.files import staged_directory
from pipeline.settings.campaign import check_slug
from pipeline.settings.tables import CONFIG_NAME, SETTINGS_NAME
from pipeline.settings.workspace import Workspace

EXAMPLE_CAMPAIGN = "back-pain"
EXAMPLE_SUBSCRIBERS = "subscribers.csv"
WORKSPACE_FILES = (CONFIG_NAME, "templates", f"campaigns/{EXAMPLE_CAMPAIGN}", EXAMPLE_SUBSCRIBERS)


def skeleton_root() -> Path:
    """Where the example workspace ships: inside the wheel, or the root of a source checkout."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "skeleton"
    if packaged.is_dir():
        return packaged
    return package.parent


def init_workspace(target: Path) -> list[Path]:
    """Write a new workspace at target; refuses to touch an existing one."""
    if target.exists() and not target.is_dir():
        raise CampaignError("exists and is not a directory", where=target)
    if target.is_dir() and any(target.iterdir()):
        existing = CONFIG_NAME if (target / CONFIG_NAME).exists() else "files"
        raise CampaignError(f"already holds {existing}; choose an empty or new directory", where=target)
    source = skeleton_root()
    with staged_directory(target) as scratch:
        for name in WORKSPACE_FILES:
            src, dst = source / name, scratch / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, dst)
        # Every link and Message-ID is signed with it: made now, from the system's random source.
        create_secret(scratch)
    return [target / name for name in WORKSPACE_FILES]


def toml_string(value: str) -> str:
    """A TOML basic string; JSON's escapes are a subset of TOML's, DEL aside."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def new_campaign(workspace: Workspace, slug: str, articles: Sequence[Path], subject: str | None = None,
                 preheader: str | None = None, segment: str | None = None) -> Path:
    """Create campaigns/SLUG with a settings file and a copy of each article, with the pictures
    beside it that it shows."""
    check_slug(slug)
    if not articles:
        raise ConfigError("give at least one --article")
    target = workspace.campaign_dir(slug)
    if target.exists():
        raise CampaignError(f"campaign {slug!r} already exists", where=target)
    parsed = [read_article(path) for path in articles]
    if subject is None:
        subject = parsed[0].title if len(parsed) == 1 else f"News from {workspace.brand.name}"
    if preheader is None:
        preheader = default_preheader(parsed[0]) if len(parsed) == 1 else " · ".join(a.title for a in parsed)
    names: list[str] = []
    for path in articles:
        name = path.name
        stem, suffix, n = path.stem, path.suffix, 2
        while name in names or name == SETTINGS_NAME:
            name, n = f"{stem}-{n}{suffix}", n + 1
        names.append(name)
    template = "newsletter" if len(parsed) == 1 else "digest"
    lines = [
        "# Settings for this campaign. Paths are relative to this folder.",
        f"subject = {toml_string(subject)}",
        f"preheader = {toml_string(preheader)}",
        f"articles = [{', '.join(toml_string(n) for n in names)}]",
        f"template = {toml_string(template)}",
    ]
    if segment:
        lines.append(f"segment = {toml_string(segment)}")
    lines += [
        "",
        "# A call to action shown after the article:",
        "# [cta]",
        '# text = "Questions about your treatment? We are happy to help."',
        '# button = "Book an appointment"',
        f'# url = "{workspace.brand.website}/book"',
        "",
    ]
    pictures = _pictures(articles, parsed)
    workspace.campaigns_dir.mkdir(parents=True, exist_ok=True)
    with staged_directory(target) as scratch:
        for path, name in zip(articles, names):
            shutil.copyfile(path, scratch / name)
        for relative, source in pictures.items():
            (scratch / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, scratch / relative)
        (scratch / SETTINGS_NAME).write_text("\n".join(lines), encoding="utf-8")
    return target


def _pictures(articles: Sequence[Path], parsed: Sequence[Article]) -> dict[str, Path]:
    """The picture files beside the articles that they show (images/room.jpg), to copy with them
    to the same places. One named by a path out of the article's folder (../photos/a.jpg), or
    that is not there, is left where it is: building the campaign names it, and its line."""
    found: dict[str, Path] = {}
    for path, article in zip(articles, parsed):
        for relative in own_pictures(article):
            normal = PurePosixPath(relative)
            source = path.parent / relative
            if normal.is_absolute() or ".." in normal.parts or not source.is_file():
                continue
            key = normal.as_posix()
            if key in found and found[key].read_bytes() != source.read_bytes():
                raise ConfigError(f"{found[key]} and {source} are different pictures that both articles call "
                                  f"{relative!r}; rename one of them")
            found.setdefault(key, source)
    return found
