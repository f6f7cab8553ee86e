"""[archive], [images] and a campaign's `archive` flag, and where "View in your browser" goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.content.compose import view_link
from pipeline.errors import ConfigError
from pipeline.settings.campaign import load_campaign
from pipeline.settings.workspace import load_workspace
from tests.conftest import edit

BASE = "https://clinic.example/newsletter"
SETTINGS = Path("campaigns/back-pain/settings.toml")


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)


def test_defaults_file_and_environment(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = load_workspace(workspace_dir)
    assert (workspace.archive.base_url, workspace.archive.title, workspace.images.embed) == (None, None, False)
    append(workspace_dir / "campaign.toml", f'\n[archive]\nbase_url = "{BASE}/"\ntitle = "Clinic notes"\n'
                                            "\n[images]\nembed = true\n")
    workspace = load_workspace(workspace_dir)
    assert (workspace.archive.base_url, workspace.archive.title, workspace.images.embed) == (BASE, "Clinic notes", True)
    monkeypatch.setenv("CAMPAIGN_ARCHIVE_BASE_URL", "https://news.clinic.example")
    monkeypatch.setenv("CAMPAIGN_IMAGES_EMBED", "no")
    workspace = load_workspace(workspace_dir)
    assert (workspace.archive.base_url, workspace.images.embed) == ("https://news.clinic.example", False)


@pytest.mark.parametrize(("text", "message"), [
    ('[archive]\nbase_url = "clinic.example/newsletter"',
     "[archive] base_url: 'clinic.example/newsletter' is not a web address starting with https://"),
    ("[archive]\nfeed = true", "[archive] feed: unknown key 'feed' (known: base_url, title)"),
    ('[images]\nembed = "sometimes"', "[images] embed: 'sometimes' is not true or false"),
])
def test_bad_settings_name_their_key(workspace_dir: Path, text: str, message: str) -> None:
    append(workspace_dir / "campaign.toml", f"\n{text}\n")
    with pytest.raises(ConfigError) as raised:
        load_workspace(workspace_dir)
    assert str(raised.value) == f"{workspace_dir / 'campaign.toml'}: {message}"


def test_the_view_link_goes_to_the_archive_page_unless_there_is_none(workspace_dir: Path) -> None:
    settings_path = workspace_dir / SETTINGS
    workspace = load_workspace(workspace_dir)
    assert view_link(workspace, load_campaign(workspace, "back-pain")) == "*|view_url|*"  # no archive: serve's copy
    append(workspace_dir / "campaign.toml", f'\n[archive]\nbase_url = "{BASE}"\n')
    workspace = load_workspace(workspace_dir)
    settings = load_campaign(workspace, "back-pain")
    assert settings.archive is None
    assert view_link(workspace, settings) == f"{BASE}/back-pain/"
    edit(settings_path, 'template = "newsletter"', 'template = "newsletter"\narchive = false')
    settings = load_campaign(workspace, "back-pain")
    assert settings.archive is False and view_link(workspace, settings) == "*|view_url|*"
    edit(settings_path, "archive = false", "archive = true")
    assert load_campaign(workspace, "back-pain").archive is True
    edit(settings_path, "archive = true", 'archive = "maybe"')
    with pytest.raises(ConfigError, match=r"settings\.toml: archive: 'maybe' is not true or false"):
        load_campaign(workspace, "back-pain")
