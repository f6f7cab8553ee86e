from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.content.build import build_campaign
from pipeline.content.lint import Finding, lint
from pipeline.content.render import Rendered
from pipeline.settings.scaffold import new_campaign
from pipeline.settings.workspace import Workspace, load_workspace
from tests.conftest import ARTICLES, edit


@pytest.fixture
def rendered(workspace: Workspace) -> Rendered:
    return build_campaign(workspace, "back-pain").rendered


def findings(rendered: Rendered, workspace: Workspace, **changes: str) -> list[str]:
    return [f"{f.level} {f.code}" for f in lint(replace(rendered, **changes), workspace)]


def test_the_example_is_clean(rendered: Rendered, workspace: Workspace) -> None:
    assert lint(rendered, workspace) == []


def test_size_warning_from_90_kb_and_error_above_102_kb(rendered: Rendered, workspace: Workspace) -> None:
    base = len(rendered.html.encode())
    pad = lambda n: rendered.html.replace("</body>", "<!--" + "x" * (n - base - 7) + "--></body>")  # noqa: E731
    assert findings(rendered, workspace, html=pad(90 * 1024 - 1)) == []
    assert findings(rendered, workspace, html=pad(90 * 1024)) == ["warning size"]
    assert findings(rendered, workspace, html=pad(102 * 1024)) == ["warning size"]
    big = lint(replace(rendered, html=pad(102 * 1024 + 1)), workspace)
    assert big == [Finding("error", "size", "email.html", "HTML is 102.0 KB; Gmail clips messages above 102 KB")]


@pytest.mark.parametrize(("link", "expected"), [
    ('<a href="">x</a>', "error empty-link"),
    ('<a href="#">x</a>', "error empty-link"),
    ('<a href="#top">x</a>', "error empty-link"),
    ("<a>x</a>", "error empty-link"),
    ('<a href="javascript:alert(1)">x</a>', "error script-link"),
    ('<a href="JavaScript:void(0)">x</a>', "error script-link"),
    ('<a href="http://clinic.example">x</a>', "warning insecure-link"),
    ('<a href="/book">x</a>', "error relative-link"),
    ('<a href="mailto:a@b.example">x</a>', None),
    ('<a href="tel:+15035550142">x</a>', None),
    ('<a href="https://clinic.example/?u=*|email|*">x</a>', None),
])
def test_links(rendered: Rendered, workspace: Workspace, link: str, expected: str | None) -> None:
    html = rendered.html.replace("</body>", f"{link}</body>")
    assert findings(rendered, workspace, html=html) == ([expected] if expected else [])


@pytest.mark.parametrize(("image", "expected"), [
    ('<img src="https://x.example/a.png">', ["error image-alt"]),
    ('<img src="https://x.example/a.png" alt=" ">', ["error image-alt"]),
    ('<img src="http://x.example/a.png" alt="A">', ["warning insecure-image"]),
    ('<img src="images/a.png" alt="A">', ["error image-src"]),
])
def test_images(rendered: Rendered, workspace: Workspace, image: str, expected: list[str]) -> None:
    html = rendered.html.replace("</body>", f"{image}</body>")
    assert findings(rendered, workspace, html=html) == expected


def test_missing_unsubscribe_and_postal_address(rendered: Rendered, workspace: Workspace) -> None:
    html = rendered.html.replace('href="*|unsubscribe_url|*"', 'href="https://x.example/"')
    text = rendered.text.replace("*|unsubscribe_url|*", "").replace(workspace.brand.address, "")
    html = html.replace(workspace.brand.address, "")
    assert findings(rendered, workspace, html=html, text=text) == [
        "error unsubscribe", "error unsubscribe", "error postal-address", "error postal-address"]


def test_subject_length_and_missing_preheader(rendered: Rendered, workspace: Workspace) -> None:
    newsletter = replace(rendered.newsletter, subject="Hi", preheader="")
    assert findings(rendered, workspace, newsletter=newsletter) == ["warning subject-length", "warning preheader"]
    long_subject = replace(rendered.newsletter, subject="x" * 79)
    assert findings(rendered, workspace, newsletter=long_subject) == ["warning subject-length"]
    assert findings(rendered, workspace, newsletter=replace(rendered.newsletter, subject="x" * 78)) == []


def test_leftover_template_syntax_and_broken_merge_tags(rendered: Rendered, workspace: Workspace) -> None:
    html = rendered.html.replace("</body>", "<p>Hello {{ name }}</p><p>Hi *|first_name</p></body>")
    text = rendered.text + "{% endif %}\n"
    result = lint(replace(rendered, html=html, text=text), workspace)
    assert [(f.level, f.code, f.where.split(":")[0]) for f in result] == [
        ("error", "template-syntax", "email.html"), ("error", "merge-tag", "email.html"),
        ("error", "template-syntax", "email.txt")]
    assert result[2].where == f"email.txt:{text.count(chr(10))}"


def test_css_braces_are_not_template_syntax(rendered: Rendered, workspace: Workspace) -> None:
    html = rendered.html.replace("</head>", "<style>@media screen{.a{color:red}}</style></head>")
    assert findings(rendered, workspace, html=html) == []


def test_mjml_mistakes_name_line_and_template(rendered: Rendered, workspace: Workspace) -> None:
    lines = rendered.mjml.split("\n")
    index = next(i for i, line in enumerate(lines) if "<mj-text" in line and "Hi " in line)
    lines[index] = lines[index].replace("<mj-text", "<mj-txt").replace("</mj-text>", "</mj-txt>")
    result = lint(replace(rendered, mjml="\n".join(lines)), workspace)
    where = f"email.mjml:{index + 1}:{{}} (templates/newsletter.mjml.j2)"
    assert result == [
        Finding("error", "mjml", where.format(5), "unknown tag <mj-txt>"),
        Finding("error", "mjml", where.format(58), "text 'Hi *|first_name:there|*,' is outside <mj-text> "
                                                   "and would be dropped"),
    ]


@pytest.mark.parametrize(("link", "expected"), [
    ('<a href="vbscript:msgbox(1)">x</a>', "error script-link"),
    ('<a href="java\tscript:alert(1)">x</a>', "error script-link"),
    ('<a href=" JAVASCRIPT:alert(1)">x</a>', "error script-link"),
    ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', "error data-link"),
    ('<a href="DATA:image/png;base64,AAAA">x</a>', "error data-link"),
])
def test_script_and_data_links_are_errors(rendered: Rendered, workspace: Workspace, link: str, expected: str) -> None:
    html = rendered.html.replace("</body>", f"{link}</body>")
    assert findings(rendered, workspace, html=html) == [expected]


@pytest.mark.parametrize(("text", "expected"), [
    ("Click here", ["warning link-text"]),
    ("here", ["warning link-text"]),
    ("Read more →", ["warning link-text"]),
    ("read more...", ["warning link-text"]),
    ("https://clinic.example/blog/back-pain", ["warning link-text"]),
    ("www.clinic.example", ["warning link-text"]),
    ("clinic.example/blog/back-pain?ref=1", ["warning link-text"]),
    ("", ["warning link-text"]),
    # A name of the site is fine (the footer shows one), and so is text that says where it goes.
    ("clinic.example", []),
    ("Read more about acupuncture for back pain", []),
    ("Book an appointment", []),
])
def test_link_text_that_says_nothing_out_of_context(rendered: Rendered, workspace: Workspace, text: str,
                                                    expected: list[str]) -> None:
    html = rendered.html.replace("</body>", f'<a href="https://clinic.example/x">{text}</a></body>')
    assert findings(rendered, workspace, html=html) == expected


def test_a_linked_image_is_named_by_its_alt_text(rendered: Rendered, workspace: Workspace) -> None:
    html = rendered.html.replace("</body>", '<a href="https://clinic.example/x"><img src="https://clinic.example/a.png" '
                                            'alt="Our clinic"></a></body>')
    assert findings(rendered, workspace, html=html) == []


def test_an_image_with_its_file_name_for_alt_text(rendered: Rendered, workspace: Workspace) -> None:
    html = rendered.html.replace("</body>", '<img src="https://clinic.example/IMG_2041.jpg" alt="IMG_2041.jpg"></body>')
    assert findings(rendered, workspace, html=html) == ["warning image-alt"]


def test_link_findings_name_the_template_that_wrote_the_link(rendered: Rendered, workspace: Workspace) -> None:
    html = rendered.html.replace('href="*|unsubscribe_url|*"', 'href="javascript:void(0)"')
    mjml = rendered.mjml.replace('href="*|unsubscribe_url|*"', 'href="javascript:void(0)"')
    result = lint(replace(rendered, html=html, mjml=mjml), workspace)
    problems = [f for f in result if f.code == "script-link"]
    assert len(problems) == 1
    assert problems[0].where.startswith("email.html:") and problems[0].where.endswith(
        " (templates/partials/footer.mjml.j2)")


@pytest.mark.parametrize(("length", "expected"), [
    (110, []), (111, ["warning preheader-length"]), (0, ["warning preheader"]),
])
def test_preheader_length(rendered: Rendered, workspace: Workspace, length: int, expected: list[str]) -> None:
    preheader = ("word " * 40)[:length]
    newsletter = replace(rendered.newsletter, preheader=preheader)
    assert findings(rendered, workspace, newsletter=newsletter) == expected
    if length > 110:
        message = lint(replace(rendered, newsletter=newsletter), workspace)[0].message
        assert message.startswith("preheader is 111 characters; inboxes show about 110")


def test_a_whitespace_preheader_counts_as_missing(rendered: Rendered, workspace: Workspace) -> None:
    newsletter = replace(rendered.newsletter, preheader="   ")
    assert findings(rendered, workspace, newsletter=newsletter) == ["warning preheader"]


def test_a_brand_colour_that_had_to_change_is_a_warning_naming_it_and_the_ratios(workspace_dir: Path) -> None:
    edit(workspace_dir / "campaign.toml", 'text_color = "#22313f"', 'text_color = "#999999"')
    workspace = load_workspace(workspace_dir)
    result = lint(build_campaign(workspace, "back-pain").rendered, workspace)
    assert result == [Finding(
        "warning", "contrast", "campaign.toml: [brand] text_color",
        "text_color #999999 as body text on the white article background and the #f3f4f6 behind code "
        "is 2.59:1, below 4.5:1; the email uses #6f6f6f (4.57:1) instead")]


def test_an_adjustment_the_email_does_not_use_is_not_reported(workspace: Workspace) -> None:
    """The default accent is a shade light for small text, but only a digest's read-more links use it."""
    newsletter = build_campaign(workspace, "back-pain").rendered
    assert lint(newsletter, workspace) == []
    new_campaign(workspace, "digest", [ARTICLES / "hydration.md", ARTICLES / "tea.html"])
    digest = build_campaign(workspace, "digest").rendered
    assert [(f.code, f.where) for f in lint(digest, workspace)] == [
        ("contrast", "campaign.toml: [brand] accent_color")]
