"""Personalisation: a send's content prepared once, then filled in for each recipient.

The one path from built content to a reader's copy. The sender's MIME, `test-send`,
`render --as` and every preview tab fill the same prepared parts with the same values, so a
preview shows exactly the bytes a reader gets: UTM parameters on the practice's own links,
the reader's own signed unsubscribe and preferences links, their merge values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.audience.recipients import SAMPLE, Recipient, require, sample_recipient
from pipeline.audience.tokens import Tokens
from pipeline.content.build import Build, Content
from pipeline.content.merge import Prepared, prepare
from pipeline.content.utm import tag_html, tag_text, utm_params
from pipeline.db.engine import Store
from pipeline.settings.workspace import Workspace


@dataclass(frozen=True)
class Copy:
    """One recipient's subject, HTML and text."""

    subject: str
    html: str
    text: str


def links(workspace: Workspace, token: str) -> dict[str, str]:
    """The unsubscribe and preferences links of the reader a token names."""
    return {
        "unsubscribe_url": f"{workspace.unsubscribe_url}/unsubscribe/{token}",
        "preferences_url": f"{workspace.unsubscribe_url}/preferences/{token}",
    }


class Personaliser:
    """Everything about a send's copies that is the same for every recipient, prepared once."""

    def __init__(self, workspace: Workspace, content: Content, slug: str, tokens: Tokens,
                 subject_prefix: str = "") -> None:
        params = utm_params(workspace.defaults.utm_source, slug)
        domains = workspace.sending.utm_domains
        self.workspace = workspace
        self.slug = slug
        self.tokens = tokens
        self.html: Prepared = prepare(tag_html(content.html, params, domains))
        self.text: Prepared = prepare(tag_text(content.text, params, domains))
        self.subject: Prepared = prepare(subject_prefix + content.subject)
        self.defaults = {"first_name": workspace.defaults.first_name_fallback}

    def token(self, recipient: Recipient) -> str:
        if recipient.subscriber_id is None:
            return SAMPLE
        return self.tokens.make(recipient.subscriber_id, recipient.email, self.slug)

    def values(self, recipient: Recipient) -> Mapping[str, object]:
        """What the recipient's merge tags are filled with: their values and their own links."""
        return {**recipient.values, **links(self.workspace, self.token(recipient))}

    def copy(self, recipient: Recipient) -> Copy:
        values = self.values(recipient)
        return Copy(self.subject.fill(values, html=False, defaults=self.defaults),
                    self.html.fill(values, html=True, defaults=self.defaults),
                    self.text.fill(values, html=False, defaults=self.defaults))


def personal_copy(store: Store, workspace: Workspace, built: Build, who: str) -> Copy:
    """`render --as WHO`: the copy of the subscriber with that address, or of the sample."""
    if who == SAMPLE:
        recipient = sample_recipient()
    else:
        with store.reading() as conn:
            recipient = require(conn, who)
    tokens = Tokens.of_workspace(workspace.root)
    return Personaliser(workspace, built.content, built.settings.slug, tokens).copy(recipient)
