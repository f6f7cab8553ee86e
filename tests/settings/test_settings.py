from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings.campaign import load_campaign
from pipeline.settings.workspace import load_workspace
from tests.conftest import edit


def test_example_workspace_settings(workspace_dir: Path) -> None:
    ws = load_workspace(workspace_dir)
    assert ws.brand.name == "Willow Creek Acupuncture"
    assert ws.sender.from_address == "newsletter@willowcreek-acupuncture.example"
    assert ws.unsubscribe_url == "https://willowcreek-acupuncture.example/email"
    assert ws.segments["back-pain"] == '"back-pain" in tags'
    campaign = load_campaign(ws, "back-pain")
    assert campaign.cta is not None and campaign.cta.button == "Book an appointment"
    assert campaign.articles == (workspace_dir / "campaigns" / "back-pain" / "article.md",)


def test_environment_overrides_any_key(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_SENDER_FROM_ADDRESS", "news@other.example")
    monkeypatch.setenv("CAMPAIGN_BRAND_PRIMARY_COLOR", "#000")
    monkeypatch.setenv("CAMPAIGN_SEGMENTS_BACK_PAIN", '"backache" in tags')
    ws = load_workspace(workspace_dir)
    assert (ws.sender.from_address, ws.brand.primary_color, ws.segments["back-pain"]) == (
        "news@other.example", "#000", '"backache" in tags')


@pytest.mark.parametrize(("old", "new", "message"), [
    ('primary_color = "#1f6f5c"', 'primary_color = "green"',
     "campaign.toml: [brand] primary_color: 'green' is not a colour like #1a73e8"),
    ('from_address = "newsletter@willowcreek-acupuncture.example"', 'from_address = "newsletter"',
     "campaign.toml: [sender] from_address: 'newsletter' is not an e-mail address"),
    ('base_url = "https://willowcreek-acupuncture.example/email"', 'base_url = "clinic/email"',
     "campaign.toml: [unsubscribe] base_url: 'clinic/email' is not a web address starting with https://"),
    ('name = "Willow Creek Acupuncture"\n', 'nmae = "Willow Creek Acupuncture"\n',
     "campaign.toml: [brand] name: is required"),
    ('[defaults]\n', '[defaults]\ncolour = "red"\n', "campaign.toml: [defaults] colour: unknown key 'colour'"),
    ('[brand]\n', '[brand\n', "campaign.toml: not valid TOML: "),
    ('font_family = "Helvetica, Arial, sans-serif"', 'font_family = "x; } body { display:none"',
     "campaign.toml: [brand] font_family: 'x; } body { display:none' is not a font list"),
])
def test_workspace_errors_name_file_section_and_key(workspace_dir: Path, old: str, new: str, message: str) -> None:
    edit(workspace_dir / "campaign.toml", old, new)
    with pytest.raises(ConfigError) as caught:
        load_workspace(workspace_dir)
    assert str(caught.value).startswith(f"{workspace_dir}/{message}")


@pytest.mark.parametrize(("old", "new", "message"), [
    ('subject = "Can acupuncture ease persistent back pain?"\n', "", "subject: is required"),
    ('articles = ["article.md"]', "articles = []", "articles: must name at least one article file"),
    ('articles = ["article.md"]', "articles = 3", "articles: must be a list of strings"),
    ('subject = "', 'subjet = "x"\nsubject = "', "unknown key 'subjet'"),
    ('url = "https://willowcreek-acupuncture.example/book"', 'url = "javascript:alert(1)"',
     "[cta] url: 'javascript:alert(1)' is not a web address starting with https://"),
    ('subject = "Can acupuncture', 'subject = "Line\\nbreak Can acupuncture', "subject: must be a single line"),
])
def test_campaign_errors_name_file_and_key(workspace_dir: Path, old: str, new: str, message: str) -> None:
    settings = workspace_dir / "campaigns" / "back-pain" / "settings.toml"
    edit(settings, old, new)
    with pytest.raises(ConfigError) as caught:
        load_campaign(load_workspace(workspace_dir), "back-pain")
    assert str(caught.value).startswith(f"{settings}: {message}")
