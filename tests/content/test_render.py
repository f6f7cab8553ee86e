from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import lxml.html
import pytest

from pipeline.audience.recipients import Recipient, sample_recipient
from pipeline.audience.tokens import Tokens
from pipeline.content.build import build_campaign
from pipeline.content.colours import contrast
from pipeline.content.compose import compose, default_preheader
from pipeline.content.models import Article
from pipeline.content.readers import read_article
from pipeline.content.render import Renderer
from pipeline.delivery.personalise import Personaliser
from pipeline.errors import ConfigError, NotFoundError, TemplateError
from pipeline.settings.campaign import load_campaign
from pipeline.settings.scaffold import new_campaign
from pipeline.settings.workspace import Workspace, load_workspace
from tests.conftest import edit

SNAPSHOTS = Path(__file__).parent / "snapshots"


def snapshot(name: str, actual: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8")


def test_example_campaign_mjml_and_text_snapshots(workspace: Workspace) -> None:
    rendered = build_campaign(workspace, "back-pain").rendered
    snapshot("back-pain.mjml", rendered.mjml)
    snapshot("back-pain.txt", rendered.text)


def test_html_has_lang_preheader_dark_mode_mobile_rules_and_no_remote_fonts(workspace: Workspace) -> None:
    html = build_campaign(workspace, "back-pain").rendered.html
    assert html.startswith('<!doctype html><html lang="en"')
    assert '<meta name="color-scheme" content="light dark" />' in html
    assert '<meta name="supported-color-schemes" content="light dark" />' in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert "@media only screen and (max-width: 479px)" in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "What the research says, and what to expect at your first visit." in html  # the preheader
    assert "fonts.googleapis.com" not in html and "@import" not in html
    assert "<title>Can acupuncture ease persistent back pain?</title>" in html


def test_per_recipient_fields_stay_as_merge_tags_until_personalised(workspace: Workspace) -> None:
    built = build_campaign(workspace, "back-pain")
    rendered = built.rendered
    assert "Hi *|first_name:there|*," in rendered.html
    assert 'href="*|unsubscribe_url|*"' in rendered.html
    assert "Unsubscribe: *|unsubscribe_url|*" in rendered.text
    personaliser = Personaliser(workspace, built.content, "back-pain", Tokens("a test secret"))
    sample = sample_recipient()
    copy = personaliser.copy(Recipient(None, sample.email, None, {**sample.values, "first_name": "<Zoë & Co>"}))
    assert "Hi &lt;Zoë &amp; Co&gt;," in copy.html
    assert "Hi <Zoë & Co>," in copy.text
    assert 'href="https://willowcreek-acupuncture.example/email/unsubscribe/sample"' in copy.html
    assert "*|" not in copy.html and "*|" not in copy.text
    copy = personaliser.copy(Recipient(None, "x@example.com", None, {"first_name": ""}))
    assert "Hi there," in copy.html and "Hi there," in copy.text


def test_article_text_is_escaped_for_mjml(workspace: Workspace, tmp_path: Path) -> None:
    article = tmp_path / "tricky.md"
    article.write_text("# Less < more & fun\n\nA bare < and a bare & and &amp; and <b>tags</b>.\n\n"
                       "- 1 < 2 & 3 > 2\n", encoding="utf-8")
    new_campaign(workspace, "tricky", [article])
    rendered = build_campaign(workspace, "tricky").rendered
    assert "Less &lt; more &amp; fun" in rendered.html
    assert "A bare &lt; and a bare &amp; and &amp; and tags." in rendered.html
    assert "1 &lt; 2 &amp; 3 &gt; 2" in rendered.html
    assert "Less < more & fun" in rendered.text and "A bare < and a bare & and & and tags." in rendered.text


def test_digest_of_several_articles(workspace: Workspace) -> None:
    articles = Path(__file__).parents[1] / "fixtures" / "articles"
    new_campaign(workspace, "digest", [articles / "hydration.md", articles / "tea.html", articles / "sleep.txt"])
    rendered = build_campaign(workspace, "digest").rendered
    assert rendered.newsletter.template == "digest"
    html = rendered.html
    for title in ("How much water do you really need?", "Herbal teas that support digestion",
                  "Five gentle habits for deeper sleep"):
        assert title in html and title in rendered.text
    assert 'alt="A glass of water with slices of lemon"' in html
    assert 'href="https://willowcreek-acupuncture.example/blog/teas"' in html
    assert "Read the full article: https://willowcreek-acupuncture.example/blog/hydration" in rendered.text


def _break_template(workspace_dir: Path, name: str, old: str, new: str) -> None:
    edit(workspace_dir / "templates" / name, old, new)


def test_jinja_syntax_error_names_template_file_and_line(workspace_dir: Path) -> None:
    _break_template(workspace_dir, "partials/cta.mjml.j2", "{% endif %}\n", "{% endfor %}\n")
    with pytest.raises(TemplateError) as caught:
        build_campaign(load_workspace(workspace_dir), "back-pain")
    assert re.fullmatch(r"templates/partials/cta\.mjml\.j2:\d+: Encountered unknown tag 'endfor'\..*", str(caught.value))


def test_mjml_compile_error_names_line_column_and_template(workspace_dir: Path) -> None:
    _break_template(workspace_dir, "partials/footer.mjml.j2", "<strong>{{ brand.name }}</strong>",
                    "<strong>{{ brand.name }}</strong> 1 < 2")
    with pytest.raises(TemplateError) as caught:
        build_campaign(load_workspace(workspace_dir), "back-pain")
    message = str(caught.value)
    assert message.startswith("templates/partials/footer.mjml.j2: MJML does not compile at line ")
    line, column = map(int, re.search(r"at line (\d+), column (\d+)", message).groups())
    mjml_line = _render_mjml_without_compiling(workspace_dir).split("\n")[line - 1]
    assert mjml_line[column - 1] == "<"
    assert "(a bare '<' must be written '&lt;')" in message


def _render_mjml_without_compiling(workspace_dir: Path) -> str:
    from pipeline.content.compose import compose
    from pipeline.content.render import Renderer, _strip_marks
    from pipeline.settings.campaign import load_campaign

    ws = load_workspace(workspace_dir)
    renderer = Renderer(ws)
    context = renderer.context(compose(ws, load_campaign(ws, "back-pain")))
    return _strip_marks(renderer.mjml_env.get_template("newsletter.mjml.j2").render(context))[0]


def test_undefined_variable_names_template_and_line(workspace_dir: Path) -> None:
    _break_template(workspace_dir, "partials/header.mjml.j2", "{{ brand.name }}", "{{ brand.nmae }}")
    with pytest.raises(TemplateError, match=r"^templates/partials/header\.mjml\.j2:\d+: .*'nmae'"):
        build_campaign(load_workspace(workspace_dir), "back-pain")


def test_unknown_template_lists_the_known_ones(workspace_dir: Path) -> None:
    settings = workspace_dir / "campaigns" / "back-pain" / "settings.toml"
    settings.write_text(settings.read_text().replace('template = "newsletter"', 'template = "fancy"'))
    with pytest.raises(NotFoundError, match=r"no template 'fancy\.mjml\.j2' in .*templates \(known: digest, newsletter\)$"):
        build_campaign(load_workspace(workspace_dir), "back-pain")


@pytest.mark.parametrize("named", ["/etc/passwd", "../../../../../../../../etc/passwd", "link.md"])
def test_articles_outside_the_workspace_are_refused_naming_the_setting(workspace_dir: Path, named: str) -> None:
    folder = workspace_dir / "campaigns" / "back-pain"
    (folder / "link.md").symlink_to("/etc/passwd")
    settings = folder / "settings.toml"
    settings.write_text(settings.read_text().replace('articles = ["article.md"]', f"articles = [{named!r}]"))
    with pytest.raises(ConfigError) as caught:
        build_campaign(load_workspace(workspace_dir), "back-pain")
    assert str(caught.value).startswith(f"{settings}: articles: '{folder / named}' is outside the workspace")


def test_a_template_linked_outside_the_workspace_is_refused(workspace_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.mjml.j2"
    outside.write_text("<mj-text>secret</mj-text>")
    footer = workspace_dir / "templates" / "partials" / "footer.mjml.j2"
    footer.unlink()
    footer.symlink_to(outside)
    with pytest.raises(TemplateError) as caught:
        build_campaign(load_workspace(workspace_dir), "back-pain")
    assert str(caught.value) == "templates/partials/footer.mjml.j2: is a link to a file outside the workspace"


def test_the_preheader_is_hidden_by_display_and_size_not_by_colour(workspace: Workspace) -> None:
    rendered = build_campaign(workspace, "back-pain").rendered
    doc = lxml.html.document_fromstring(rendered.html)
    (hidden,) = doc.find_class("preheader")
    style = dict(part.split(":", 1) for part in hidden.get("style").rstrip(";").split(";"))
    assert {k: style[k] for k in ("display", "max-height", "overflow", "opacity", "mso-hide")} == {
        "display": "none", "max-height": "0", "overflow": "hidden", "opacity": "0", "mso-hide": "all"}
    # Its colour reads on the page it sits on: nothing for a filter to count as hidden text.
    assert contrast(style["color"], workspace.brand.background_color) >= 4.5
    assert "color:#ffffff" not in rendered.html.split('class="preheader"')[0]  # and no mj-preview
    text = hidden.text_content()
    assert text.startswith("What the research says, and what to expect at your first visit.\u034f\u200c\u00a0")
    assert set(text[len(rendered.newsletter.preheader):]) == {"\u034f", "\u200c", "\u00a0"}
    # The first text of the body, before the header and the article.
    assert doc.body.text_content().lstrip().startswith("What the research says")


def test_no_preheader_no_hidden_block(workspace: Workspace) -> None:
    newsletter = replace(compose(workspace, load_campaign(workspace, "back-pain")), preheader="")
    assert 'class="preheader"' not in Renderer(workspace).render(newsletter).html


def _article_with_lead(tmp_path: Path, lead: str) -> Article:
    path = tmp_path / "article.md"
    path.write_text(f"# A title\n\n{lead}\n\n## More\n\nText.\n", encoding="utf-8")
    return read_article(path)


@pytest.mark.parametrize(("lead", "expected"), [
    ("Short and sweet. Then more.", "Short and sweet."),
    # 183 characters in its first sentence: cut at a word, under 100 with the ellipsis.
    (("Back pain that lingers for months, keeps you up at night and stops you from lifting your children, "
      "gardening or sitting through a film is one of the most common reasons people come to us. Then more."),
     "Back pain that lingers for months, keeps you up at night and stops you from lifting your children…"),
    ("A" * 120 + ".", "A" * 99 + "…"),
])
def test_the_default_preheader_is_the_first_sentence_cut_at_a_word(tmp_path: Path, lead: str, expected: str) -> None:
    preheader = default_preheader(_article_with_lead(tmp_path, lead))
    assert preheader == expected
    assert len(preheader) <= 100


def test_a_preheader_of_the_users_own_is_kept_as_written(workspace: Workspace) -> None:
    settings = workspace.campaign_dir("back-pain") / "settings.toml"
    long = "An entirely deliberate preheader that runs well past the usual length " * 2
    edit(settings, 'preheader = "What the research says, and what to expect at your first visit."',
         f'preheader = "{long.strip()}"')
    assert build_campaign(workspace, "back-pain").rendered.newsletter.preheader == long.strip()


def test_merge_tags_in_links_to_the_practices_own_site_survive_the_utm_parameters() -> None:
    from pipeline.content.utm import add_utm, utm_params

    params = utm_params("newsletter", "back-pain")
    tagged = add_utm("https://clinic.example/book?e=*|EMAIL|*&n=*|first_name:friend|*", params, ["clinic.example"])
    assert tagged == ("https://clinic.example/book?e=*|EMAIL|*&n=*|first_name:friend|*&utm_source=newsletter"
                      "&utm_medium=email&utm_campaign=back-pain")
    assert add_utm("https://clinic.example/?utm_source=x", params, ["clinic.example"]) == (
        "https://clinic.example/?utm_source=x&utm_medium=email&utm_campaign=back-pain")
    assert add_utm("https://elsewhere.example/?e=*|EMAIL|*", params, ["clinic.example"]) == (
        "https://elsewhere.example/?e=*|EMAIL|*")
