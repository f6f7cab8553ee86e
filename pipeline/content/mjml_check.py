"""Checks MJML structure that mjml-python lets through: unknown mj- tags, wrong nesting, stray text.

mjml-python compiles unknown tags and mismatched closing tags without a word and quietly
drops text it cannot place, so the generated MJML is checked against MJML 4's rules here.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

_CONTENT = {"mj-accordion", "mj-button", "mj-carousel", "mj-divider", "mj-image", "mj-navbar",
            "mj-raw", "mj-social", "mj-spacer", "mj-table", "mj-text", "mj-include"}
CHILDREN: dict[str, set[str]] = {
    "mjml": {"mj-head", "mj-body", "mj-include"},
    "mj-head": {"mj-attributes", "mj-breakpoint", "mj-font", "mj-html-attributes", "mj-preview",
                "mj-style", "mj-title", "mj-raw", "mj-include"},
    "mj-html-attributes": {"mj-selector"},
    "mj-selector": {"mj-html-attribute"},
    "mj-body": {"mj-section", "mj-wrapper", "mj-hero", "mj-raw", "mj-include"},
    "mj-wrapper": {"mj-section", "mj-hero", "mj-raw", "mj-include"},
    "mj-section": {"mj-column", "mj-group", "mj-raw", "mj-include"},
    "mj-group": {"mj-column", "mj-raw"},
    "mj-column": _CONTENT,
    "mj-hero": _CONTENT,
    "mj-accordion": {"mj-accordion-element", "mj-raw"},
    "mj-accordion-element": {"mj-accordion-title", "mj-accordion-text", "mj-raw"},
    "mj-carousel": {"mj-carousel-image"},
    "mj-navbar": {"mj-navbar-link", "mj-raw"},
    "mj-social": {"mj-social-element", "mj-raw"},
}
# Tags whose content is HTML (or CSS, or plain text) rather than more MJML.
ENDING = {"mj-text", "mj-button", "mj-table", "mj-raw", "mj-navbar-link", "mj-accordion-title",
          "mj-accordion-text", "mj-social-element", "mj-style", "mj-title", "mj-preview",
          "mj-html-attribute"}
LEAVES = {"mj-image", "mj-divider", "mj-spacer", "mj-carousel-image", "mj-breakpoint", "mj-font",
          "mj-all", "mj-class", "mj-include"}
KNOWN = set(CHILDREN) | ENDING | LEAVES | set().union(*CHILDREN.values())


@dataclass(frozen=True)
class Problem:
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[tuple[str, int, int]] = []
        self.problems: list[Problem] = []
        self.in_attributes = 0

    def _at(self, message: str) -> None:
        line, offset = self.getpos()
        self.problems.append(Problem(line, offset + 1, message))

    def _ending(self) -> str | None:
        return next((name for name, _, _ in reversed(self.stack) if name in ENDING), None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, closes_itself=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, closes_itself=True)

    def _open(self, tag: str, closes_itself: bool) -> None:
        inside = self._ending()
        if inside is not None:
            if tag.startswith("mj-") or tag == "mjml":
                self._at(f"<{tag}> cannot be inside <{inside}>, whose content is HTML")
            return  # HTML inside mj-text and friends is the author's business
        parent = self.stack[-1][0] if self.stack else None
        if not tag.startswith("mj-") and tag != "mjml":
            self._at(f"HTML tag <{tag}> must be inside <mj-text> or <mj-raw>")
            return
        if tag not in KNOWN:
            self._at(f"unknown tag <{tag}>")
        elif parent is None and tag != "mjml":
            self._at(f"<{tag}> must be inside <mjml>")
        elif parent == "mj-attributes" or self.in_attributes:
            pass  # mj-attributes holds default attributes for any component
        elif parent is not None and tag not in CHILDREN.get(parent, set()):
            allowed = ", ".join(f"<{c}>" for c in sorted(CHILDREN.get(parent, set()))) or "nothing"
            self._at(f"<{tag}> cannot be inside <{parent}> (allowed there: {allowed})")
        if not closes_itself:
            line, offset = self.getpos()
            self.stack.append((tag, line, offset + 1))
            if tag == "mj-attributes":
                self.in_attributes += 1

    def handle_endtag(self, tag: str) -> None:
        inside = self._ending()
        is_mjml = tag.startswith("mj-") or tag == "mjml"
        if inside is not None and tag != inside:
            if is_mjml:
                self._at(f"</{tag}> found where </{inside}> was expected")
                self._unwind(tag)
            return
        if not is_mjml:
            return  # its opening tag was already reported
        if not self.stack:
            self._at(f"</{tag}> closes nothing")
            return
        name, line, column = self.stack[-1]
        if name != tag:
            self._at(f"</{tag}> does not match <{name}> opened at line {line}, column {column}")
            self._unwind(tag)
            return
        self.stack.pop()
        if tag == "mj-attributes":
            self.in_attributes -= 1

    def _unwind(self, tag: str) -> None:
        """Recover after a mismatch so one mistake is reported once, not at every later tag."""
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return
        if self.stack:
            self.stack.pop()  # most likely a misspelt closing tag for the innermost element

    def handle_data(self, data: str) -> None:
        if "<" in data:
            self._at("a bare '<' must be written '&lt;'")
        elif data.strip() and self.stack and self._ending() is None:
            snippet = " ".join(data.split())[:40]
            self._at(f"text {snippet!r} is outside <mj-text> and would be dropped")

    def close(self) -> None:
        super().close()
        for name, line, column in reversed(self.stack):
            self.problems.append(Problem(line, column, f"<{name}> is never closed"))
        self.stack.clear()


def check_mjml(source: str) -> list[Problem]:
    """Every structural problem in an MJML document, in source order."""
    checker = _Checker()
    checker.feed(source)
    checker.close()
    if not source.lstrip().startswith("<mjml"):
        checker.problems.insert(0, Problem(1, 1, "the document must start with <mjml>"))
    return checker.problems
