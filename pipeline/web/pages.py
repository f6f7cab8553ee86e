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

    def _message(self, title: str, lines: Sequence[str], contact: str | None = None, contact_text: str = "",
                 link: str | None = None, link_text: str = "") -> str:
        return self._render("message.html.j2", title, lines=lines, contact=contact, contact_text=contact_text,
                            link=link, link_text=link_text)

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

    # The signup form (web.signup). Its answers are the same whether or not an address is on the list.

    def signup_form(self, values: Mapping[str, str] | None = None, chosen: Sequence[str] = (),
                    errors: Mapping[str, str] | None = None) -> str:
        signup = self.workspace.signup
        topics = [{"tag": tag, "label": label, "chosen": tag in chosen}
                  for tag, label in self.workspace.topics.items()]
        return self._render("signup.html.j2", signup.heading, intro=signup.intro, topics=topics,
                            values={"email": "", "first_name": "", **(values or {})}, errors=errors or {},
                            consent_text=signup.consent_text, consent_version=signup.version)

    def signup_received(self, email: str) -> str:
        signup = self.workspace.signup
        if not signup.double_opt_in:
            return self._message("Thank you for signing up",
                                 [f"If {email} was not on our list yet, it is now: our next newsletter reaches you."],
                                 self.contact, "Questions? Write to us at")
        days = f"{signup.confirm_days} day{'s' if signup.confirm_days != 1 else ''}"
        return self._message("Check your inbox",
                             [(f"If {email} is not on our list yet, an email with a link to confirm your "
                               f"subscription is on its way. The link works for {days}."),
                              "Nothing arrived after a few minutes? Look in your spam folder."],
                             self.contact, "Still nothing? Write to us at")

    def signup_confirm(self, email: str) -> str:
        return self._render("signup_confirm.html.j2", "Confirm your subscription", email=email)

    def signup_done(self, email: str) -> str:
        return self._message("You are subscribed",
                             [f"Thank you: {email} will receive the {self.workspace.brand.name} newsletter.",
                              "Every email has a link to choose your topics or to leave the list."])

    def signup_expired(self, form_url: str) -> str:
        days = self.workspace.signup.confirm_days
        return self._message("This link has expired",
                             [(f"Confirmation links work for {days} day{'s' if days != 1 else ''}. Sign up again "
                               "and we will send you a new one.")], self.contact, "You can also write to us at",
                             form_url, "Sign up again")

    def signup_invalid(self, form_url: str) -> str:
        # As for the other links: nothing about whose link it was, or why it failed.
        return self._message("This link is not valid",
                             ["It may be incomplete, or its address is no longer on our list."],
                             self.contact, "You can also write to us at", form_url, "Sign up again")

    def signup_refused(self) -> str:
        return self._message("This form did not come from our page",
                             ["Nothing was changed. Please sign up with the form on our website."],
                             self.contact, "You can also write to us at")

    def snippet(self, action: str) -> str:
        """The signup form as HTML to paste into another site's page (`campaign signup-snippet`)."""
        signup = self.workspace.signup
        return _env.get_template("snippet.html.j2").render(
            brand=self.workspace.brand, action=action, topics=self.workspace.topics, consent_text=signup.consent_text,
            consent_version=signup.version)

    def error(self, status: int) -> str:
        if status == 429:
            return self._message("Too many requests from here",
                                 ["Please wait a while, then try again."], self.contact, "You can also write to us at")
        titles = {404: "There is no page here", 405: "This page cannot do that",
                  413: "That is more than this page accepts"}
        return self._message(titles.get(status, "Something went wrong on our side"),
                             ["Please use the unsubscribe or preferences link in one of our emails."],
                             self.contact, "If the problem persists, write to us at")
