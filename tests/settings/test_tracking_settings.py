"""[tracking]: off by default, on in campaign.toml, a campaign's settings.toml or the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings.campaign import load_campaign
from pipeline.settings.workspace import TRACKING_NOTICE, Tracking, load_workspace
from tests.conftest import Campaign
from tests.tracked import track


def tracking(root: Path) -> tuple[Tracking, Tracking]:
    workspace = load_workspace(root)
    return workspace.tracking, load_campaign(workspace, "back-pain").tracking


def test_tracking_is_off_unless_turned_on(workspace_dir: Path) -> None:
    assert tracking(workspace_dir) == (Tracking(False, False, TRACKING_NOTICE),) * 2
    track(workspace_dir, opens=True, clicks=False, extra='notice = "We count opens."\n')
    assert tracking(workspace_dir) == (Tracking(True, False, "We count opens."),) * 2


def test_a_campaign_overrides_each_key_and_the_environment_overrides_both(workspace_dir: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    track(workspace_dir)
    path = workspace_dir / "campaigns" / "back-pain" / "settings.toml"
    path.write_text(path.read_text() + '\n[tracking]\nclicks = false\nnotice = ""\n')
    assert tracking(workspace_dir) == (Tracking(True, True, TRACKING_NOTICE), Tracking(True, False, ""))
    monkeypatch.setenv("CAMPAIGN_TRACKING_OPENS", "false")
    monkeypatch.setenv("CAMPAIGN_TRACKING_CLICKS", "true")
    assert tracking(workspace_dir) == (Tracking(False, True, TRACKING_NOTICE), Tracking(False, True, ""))


@pytest.mark.parametrize("line, message", [
    ("opens = 1", r"\[tracking\] opens: 1 is not true or false"),
    ("clicks = \"maybe\"", r"\[tracking\] clicks: 'maybe' is not true or false"),
    ("pixels = true", r"\[tracking\] pixels: unknown key 'pixels' \(known: clicks, notice, opens\)"),
])
def test_bad_tracking_settings_name_their_key(workspace_dir: Path, line: str, message: str) -> None:
    config = workspace_dir / "campaign.toml"
    config.write_text(config.read_text() + f"\n[tracking]\n{line}\n")
    with pytest.raises(ConfigError, match=message):
        load_workspace(workspace_dir)


def test_a_bad_value_from_the_environment_names_the_variable(campaign: Campaign,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_TRACKING_OPENS", "perhaps")
    result = campaign("render", "back-pain")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (f"campaign: error: CAMPAIGN_TRACKING_OPENS (for {campaign.root / 'campaign.toml'}: "
                             "[tracking] opens): 'perhaps' is not true or false\n")
