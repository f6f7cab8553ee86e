"""The email a signup sends at once, from `campaign serve` itself: a link to confirm the address.

Templated like a newsletter: templates/confirm.mjml.j2 (MJML, compiled to HTML) and
confirm.txt.j2 (the text part), with merge tags for the reader's first name and their link,
filled in as a newsletter's are. It goes out through the workspace's transport (--transport or
CAMPAIGN_TRANSPORT; default maildir:outbox). It is not a list message: no List-Unsubscribe,
and nothing the reader typed reaches a header (To carries the address alone).
"""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from pipeline.clock import utcnow
from pipeline.content.merge import prepare, tag
from pipeline.content.render import Renderer
from pipeline.delivery.mime import Dkim, one_line
from pipeline.delivery.sending import connection_factory
from pipeline.settings.workspace import Workspace

TEMPLATE = "confirm"


class Confirmations:
    """Renders and sends confirmation emails for one workspace; safe to use from several threads
    (each message opens its own transport connection)."""

    def __init__(self, workspace: Workspace, transport: str | None) -> None:
        self.workspace = workspace
        self.description, self.connect = connection_factory(workspace, transport)
        sending = workspace.sending
        self.dkim = (Dkim(sending.dkim_selector, workspace.sender.from_address.rsplit("@", 1)[1], sending.dkim_key)
                     if sending.dkim_selector and sending.dkim_key else None)
        self.check()

    def _parts(self) -> tuple[str, str]:
        """The two parts with their merge tags, rendered now: an edit of the templates shows in
        the next message, as in a preview."""
        context = {"subject": self.workspace.signup.confirm_subject, "confirm_url": tag("confirm_url"),
                   "days": self.workspace.signup.confirm_days, "signup": self.workspace.signup}
        return Renderer(self.workspace).render_message(TEMPLATE, context)

    def check(self) -> None:
        """Raise the template's error now (a missing or broken confirm.mjml.j2), not at the first signup."""
        self._parts()

    def message(self, to: str, first_name: str | None, confirm_url: str) -> bytes:
        html, text = self._parts()
        values = {"first_name": first_name or "", "confirm_url": confirm_url, "email": to}
        defaults = {"first_name": self.workspace.defaults.first_name_fallback}
        sender = self.workspace.sender
        message = EmailMessage(policy=email.policy.SMTP)
        message["From"] = formataddr((sender.from_name, sender.from_address))
        message["To"] = to
        if sender.reply_to:
            message["Reply-To"] = sender.reply_to
        message["Subject"] = one_line(prepare(self.workspace.signup.confirm_subject).fill(values, html=False,
                                                                                           defaults=defaults))
        message["Date"] = format_datetime(utcnow())
        message["Message-ID"] = make_msgid("confirm", domain=sender.from_address.rsplit("@", 1)[1])
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to it
        message.set_content(prepare(text).fill(values, html=False, defaults=defaults))
        message.add_alternative(prepare(html).fill(values, html=True, defaults=defaults), subtype="html")
        for part in message.iter_parts():
            del part["MIME-Version"]  # the message's own header is the one that counts
        data = message.as_bytes()
        return self.dkim.sign(data) + data if self.dkim is not None else data

    def send(self, to: str, first_name: str | None, confirm_url: str) -> str:
        """Send one confirmation; returns the server's reply. Raises the transport's failures."""
        data = self.message(to, first_name, confirm_url)
        connection = self.connect()
        try:
            return connection.send(self.workspace.sending.return_path, to, data)
        finally:
            connection.close()
