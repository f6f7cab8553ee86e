from __future__ import annotations

from dataclasses import replace

import pytest

from pipeline.content.build import build_campaign
from pipeline.content.lint import Finding, lint
from pipeline.content.render import Rendered
from pipeline.settings.workspace import Workspace


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
        Finding("error", "mjml", where.format(37), "text 'Hi *|first_name:there|*,' is outside <mj-text> "
                                                   "and would be dropped"),
    ]
