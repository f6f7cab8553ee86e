"""The pages `campaign serve` answers with: small, in the brand's colours, and free of scripts
and of anything fetched from elsewhere. Every value is HTML-escaped by Jinja's autoescape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from pipeline.audience.subscribers import Subscriber
from pipeline.settings.workspace import Workspace

_env = Environment(loader=PackageLoader("pipeline.web", "templates"), autoescape=select_autoescape(["j2"]),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


class Pages:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        sender = workspace.sender
        self.contact = sender.reply_to or sender.from_address

    def _render(self, template: str, title: str, **context: object) -> str:
        return _env.get_template(template).render(brand=self.workspace.brand, title=title, **context)

    def _message(self, title: str, lines: Sequence[str], contact: str | None = None, contact_text: str = "") -> str:
        return self._render("message.html.j2", title, lines=lines, contact=contact, contact_text=contact_text)

    def confirm(self, subscriber: Subscriber, preferences_url: str) -> str:
        return self._render("confirm.html.j2", f"Unsubscribe from {self.workspace.brand.name}?",
                            email=subscriber.email, preferences_url=preferences_url)

    def preferences(self, subscriber: Subscriber, topics: Mapping[str, str], saved: bool = False) -> str:
        choices = [{"tag": tag, "label": label, "chosen": tag in subscriber.tags} for tag, label in topics.items()]
        return self._render("preferences.html.j2", "Your email preferences", email=subscriber.email,
                            topics=choices, saved=saved)

    def unsubscribed(self, subscriber: Subscriber | None) -> str:
        """Also the answer for an erased reader, whose address is no longer known."""
        who = subscriber.email if subscriber else "You"
        return self._message("You are unsubscribed",
                             [f"{who} will get no more newsletters from {self.workspace.brand.name}."],
                             self.contact, "Unsubscribed by mistake? Write to us at")

    def refused(self) -> str:
        """For a form sent to a reader's link from another site's page."""
        return self._message("This form did not come from our page",
                             [("Nothing was changed. Open the link in one of our emails again and use the "
                               "button on that page.")],
                             self.workspace.unsubscribe_mailto or self.contact, "You can also write to us at")

    def invalid_link(self) -> str:
        # Says nothing of whose link it was or why it failed: a guessed or altered token learns nothing.
        return self._message("This link is not valid",
                             ["It may be incomplete, or too old. The unsubscribe link in any recent email "
                              "from us works."],
                             self.workspace.unsubscribe_mailto or self.contact, "You can also write to us at")

    def error(self, status: int) -> str:
        titles = {404: "There is no page here", 405: "This page cannot do that",
                  413: "That is more than this page accepts"}
        return self._message(titles.get(status, "Something went wrong on our side"),
                             ["Please use the unsubscribe or preferences link in one of our emails."],
                             self.contact, "If the problem persists, write to us at")
