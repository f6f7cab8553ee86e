from __future__ import annotations

import re
import tomllib
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import cli
from tests.conftest import ARTICLES, Campaign

OUTPUTS = ("email.mjml", "email.html", "email.txt")


def test_init_writes_a_workspace_and_refuses_to_overwrite_it(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "clinic"
    result = runner.invoke(cli, ["init", str(target)])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [str(target / n) for n in
                                          ("campaign.toml", "templates", "campaigns/back-pain", "subscribers.csv")]
    assert result.stderr == f"Workspace ready. Next: cd {target} && campaign render back-pain\n"
    assert (target / "templates" / "newsletter.mjml.j2").is_file()
    assert (target / "campaigns" / "back-pain" / "article.md").is_file()
    config = tomllib.loads((target / "campaign.toml").read_text())
    assert set(config) == {"brand", "sender", "unsubscribe", "defaults", "segments", "sending", "topics", "bounces",
                           "signup"}

    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    again = runner.invoke(cli, ["init", str(target)])
    assert again.exit_code == 1
    assert again.stderr == f"campaign: error: {target}: already holds campaign.toml; choose an empty or new directory\n"
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before


def test_init_into_an_existing_empty_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["init", str(tmp_path)])
    assert result.exit_code == 0
    assert (tmp_path / "campaign.toml").is_file()
    # No staging leftovers; the one hidden file is the secret made for the workspace, private.
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [".campaign-secret"]
    assert (tmp_path / ".campaign-secret").stat().st_mode & 0o777 == 0o600
    assert len((tmp_path / ".campaign-secret").read_text(encoding="utf-8").strip()) >= 40


def test_new_defaults_subject_and_preheader_from_the_article(campaign: Campaign) -> None:
    result = campaign("new", "sleep-2026", "--article", str(ARTICLES / "sleep.txt"), "--segment", "back-pain")
    folder = campaign.root / "campaigns" / "sleep-2026"
    assert result.exit_code == 0
    assert result.stdout == f"{folder}\n"
    assert sorted(p.name for p in folder.iterdir()) == ["settings.toml", "sleep.txt"]
    assert (folder / "sleep.txt").read_bytes() == (ARTICLES / "sleep.txt").read_bytes()
    settings = tomllib.loads((folder / "settings.toml").read_text())
    assert settings == {
        "subject": "Five gentle habits for deeper sleep",
        "preheader": "Good sleep is the quiet foundation of healing.",
        "articles": ["sleep.txt"],
        "template": "newsletter",
        "segment": "back-pain",
    }


def test_new_with_explicit_subject_and_several_articles_makes_a_digest(campaign: Campaign) -> None:
    result = campaign("new", "spring-digest", "--article", str(ARTICLES / "tea.html"),
                      "--article", str(ARTICLES / "ginger.txt"), "--subject", 'Spring "tips" & news',
                      "--preheader", "Two short reads")
    assert result.exit_code == 0
    settings = tomllib.loads((campaign.root / "campaigns" / "spring-digest" / "settings.toml").read_text())
    assert settings["subject"] == 'Spring "tips" & news'
    assert settings["template"] == "digest"
    assert settings["articles"] == ["tea.html", "ginger.txt"]
    assert campaign("render", "spring-digest").exit_code == 0


def test_new_rejects_bad_slugs_existing_campaigns_and_bad_articles(campaign: Campaign, tmp_path: Path) -> None:
    bad = campaign("new", "Back_Pain", "--article", str(ARTICLES / "sleep.txt"))
    assert bad.exit_code == 1
    assert bad.stderr == ("campaign: error: campaign name 'Back_Pain' must use only lowercase letters, digits "
                          "and single hyphens, like 'back-pain-2026'\n")
    exists = campaign("new", "back-pain", "--article", str(ARTICLES / "sleep.txt"))
    assert exists.exit_code == 1
    assert exists.stderr == (f"campaign: error: {campaign.root / 'campaigns' / 'back-pain'}: "
                             "campaign 'back-pain' already exists\n")
    missing = campaign("new", "ghost", "--article", str(tmp_path / "ghost.md"))
    assert missing.exit_code == 1
    assert missing.stderr == f"campaign: error: {tmp_path / 'ghost.md'}: no such file\n"
    assert not (campaign.root / "campaigns" / "ghost").exists()
    assert sorted(p.name for p in (campaign.root / "campaigns").iterdir()) == ["back-pain"]


def test_render_writes_the_three_files_and_a_personal_copy(campaign: Campaign) -> None:
    result = campaign("render", "back-pain", "--as", "sample")
    out = campaign.root / "out" / "back-pain"
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [str(out / n) for n in (*OUTPUTS, "personal.html", "personal.txt")]
    assert result.stderr == "lint: no problems\n"
    assert "Hi Alex," in (out / "personal.txt").read_text()
    assert (out / "email.html").read_text().startswith("<!doctype html>")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_render_to_another_folder(campaign: Campaign, tmp_path: Path) -> None:
    result = campaign("render", "back-pain", "--out", str(tmp_path / "elsewhere"))
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [str(tmp_path / "elsewhere" / "back-pain" / n) for n in OUTPUTS]


def _article(campaign: Campaign) -> Path:
    return campaign.root / "campaigns" / "back-pain" / "article.md"


def _assert_failed_cleanly(campaign: Campaign, message: str) -> None:
    result = campaign("render", "back-pain")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"campaign: error: {message}\n"
    assert not (campaign.root / "out").exists()


def test_render_empty_article(campaign: Campaign) -> None:
    _article(campaign).write_text("\n  \n")
    _assert_failed_cleanly(campaign, f"{_article(campaign)}: is empty")


def test_render_binary_article(campaign: Campaign) -> None:
    _article(campaign).write_bytes(b"GIF89a\x00\x01\x00\x01" + bytes(100))
    _assert_failed_cleanly(campaign, f"{_article(campaign)}: is a binary file, not a Markdown, HTML or text article")


def test_render_undecodable_article(campaign: Campaign) -> None:
    _article(campaign).write_bytes(b"# Title\n\nsmart \x93quotes\x94\n")
    _assert_failed_cleanly(campaign, f"{_article(campaign)}: is not valid utf-8 text (byte 0x93 on line 3, "
                                     "offset 15); save it as UTF-8")


def test_render_missing_article(campaign: Campaign) -> None:
    _article(campaign).unlink()
    _assert_failed_cleanly(campaign, f"{_article(campaign)}: no such file")


def test_render_jinja_syntax_error(campaign: Campaign) -> None:
    footer = campaign.root / "templates" / "partials" / "footer.mjml.j2"
    lines = footer.read_text().split("\n")
    lines[3] = lines[3] + " {{ brand.name | shout }}"
    footer.write_text("\n".join(lines))
    result = campaign("render", "back-pain")
    assert result.exit_code == 1
    assert result.stderr == "campaign: error: templates/partials/footer.mjml.j2:4: No filter named 'shout' found.\n"
    assert not (campaign.root / "out").exists()


def test_render_mjml_error_names_the_template(campaign: Campaign) -> None:
    header = campaign.root / "templates" / "partials" / "header.mjml.j2"
    header.write_text(header.read_text().replace("<mj-column>", "<mj-column>\n    <mj-text>a < b</mj-text>", 1))
    result = campaign("render", "back-pain")
    assert result.exit_code == 1
    assert result.stderr.startswith("campaign: error: templates/partials/header.mjml.j2: MJML does not compile at "
                                    "line 39, column 16 of the generated email.mjml: ")
    assert result.stderr.endswith("near '<mj-text>a < b</mj-text>'\n")
    assert not (campaign.root / "out").exists()


def test_render_unknown_campaign_and_template(campaign: Campaign) -> None:
    unknown = campaign("render", "flu-season")
    assert unknown.exit_code == 1
    assert unknown.stderr == (f"campaign: error: no campaign 'flu-season' in {campaign.root / 'campaigns'} "
                              "(known: back-pain)\n")
    settings = campaign.root / "campaigns" / "back-pain" / "settings.toml"
    settings.write_text(settings.read_text().replace('"newsletter"', '"glossy"'))
    _assert_failed_cleanly(campaign, f"no template 'glossy.mjml.j2' in {campaign.root / 'templates'} "
                                     "(known: digest, newsletter)")


def test_render_keeps_the_previous_output_when_a_later_render_fails(campaign: Campaign) -> None:
    assert campaign("render", "back-pain").exit_code == 0
    out = campaign.root / "out" / "back-pain"
    before = {n: (out / n).read_text() for n in OUTPUTS}
    _article(campaign).write_text("")
    assert campaign("render", "back-pain").exit_code == 1
    assert {n: (out / n).read_text() for n in OUTPUTS} == before


def test_lint_clean_warning_strict_and_error(campaign: Campaign) -> None:
    clean = campaign("lint", "back-pain")
    assert (clean.exit_code, clean.stdout, clean.stderr) == (0, "", "lint: no problems\n")

    settings = campaign.root / "campaigns" / "back-pain" / "settings.toml"
    settings.write_text(settings.read_text().replace('subject = "Can acupuncture ease persistent back pain?"',
                                                     'subject = "Back pain"'))
    warned = campaign("lint", "back-pain")
    assert warned.exit_code == 0
    assert warned.stdout == ("warning: settings.toml: subject is 9 characters; keep it between 10 and 78 "
                             "[subject-length]\n")
    assert warned.stderr == "lint: 1 warning(s)\n"
    strict = campaign("lint", "back-pain", "--strict")
    assert strict.exit_code == 1
    assert strict.stderr == "campaign: error: lint found 0 error(s) and 1 warning(s)\n"

    _article(campaign).write_text(_article(campaign).read_text() + "\n[Click here](#)\n")
    failed = campaign("lint", "back-pain")
    assert failed.exit_code == 1
    assert "error: email.html:" in failed.stdout and "link 'Click here' goes nowhere (href '#') [empty-link]" in failed.stdout
    assert failed.stderr == "campaign: error: lint found 1 error(s) and 1 warning(s)\n"


def test_usage_errors_exit_2(campaign: Campaign) -> None:
    result = campaign("render")
    assert result.exit_code == 2
    assert "Missing argument 'SLUG'" in result.stderr


def test_commands_outside_a_workspace(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--workspace", str(tmp_path), "render", "back-pain"])
    assert result.exit_code == 1
    assert result.stderr == (f"campaign: error: {tmp_path}: no campaign.toml here: run 'campaign init DIR' "
                             "or pass --workspace DIR\n")


def test_render_as_a_real_subscriber(campaign: Campaign) -> None:
    added = campaign("subscribers", "add", "zoe@example.com", "--first-name", "Zoë <Z>", "--field", "city=Oslo")
    assert added.exit_code == 0
    result = campaign("render", "back-pain", "--as", "ZOE@example.com")
    assert result.exit_code == 0
    html = (campaign.root / "out" / "back-pain" / "personal.html").read_text()
    text = (campaign.root / "out" / "back-pain" / "personal.txt").read_text()
    assert "Hi Zoë &lt;Z&gt;," in html and "Hi Zoë <Z>," in text
    link = re.search(r'href="(https://willowcreek-acupuncture\.example/email/unsubscribe/[^"]+)"', html)
    assert link is not None and f"Unsubscribe: {link.group(1)}" in text
    unknown = campaign("render", "back-pain", "--as", "nobody@example.com")
    assert (unknown.exit_code, unknown.stderr) == (1, "campaign: error: no subscriber 'nobody@example.com'\n")


def test_an_output_folder_that_cannot_be_written_is_one_line_and_writes_nothing(campaign: Campaign) -> None:
    result = campaign("render", "back-pain", "--out", "/proc/x")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "campaign: error: /proc/x/back-pain/email.mjml: cannot write: No such file or directory\n"
