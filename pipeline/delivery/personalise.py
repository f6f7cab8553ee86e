"""Personalisation: a send's content prepared once, then filled in for each recipient.

The one path from built content to a reader's copy. The sender's MIME, `test-send`,
`render --as` and every preview tab fill the same prepared parts with the same values, so a
preview shows exactly the bytes a reader gets: UTM parameters on the practice's own links,
the reader's own signed unsubscribe and preferences links, their merge values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from itsdangerous import BadSignature, Signer

from pipeline.audience.recipients import SAMPLE, Recipient, require, sample_recipient
from pipeline.audience.tokens import Tokens, signed
from pipeline.content.build import Build, Content
from pipeline.content.compose import archive_path
from pipeline.content.merge import PerPart, Prepared, prepare
from pipeline.content.render import wrap
from pipeline.content.utm import tag_html, tag_text, utm_params
from pipeline.db.engine import Store
from pipeline.engagement.links import NOTICE, numbering, tracked
from pipeline.engagement.tokens import TrackingTokens
from pipeline.errors import CampaignError
from pipeline.settings.campaign import load_campaign
from pipeline.settings.workspace import Tracking, Workspace


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


VIEW_FIELDS = frozenset({"view_url", "archive_url"})  # "View in your browser" (content.compose.view_link)
_VIEW_SALT = "view-link"


@dataclass(frozen=True)
class ViewLink:
    subscriber_id: int
    binding: str  # the keyed hash of the reader's address (audience.tokens)
    digest: str  # the first 12 of the send's content hash: which send of the campaign
    campaign: str


class ViewTokens:
    """Tokens of the links to one reader's own copy of one send, on `campaign serve` (/view/TOKEN).

    Signed apart from the unsubscribe and preferences links (a salt of their own), so that neither
    can stand in for the other, and bound to the reader's address as those are.
    """

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self._key = Signer(tokens.secret, salt=_VIEW_SALT).derive_key()  # derived once, not per message
        self._signer = Signer(self._key, salt=_VIEW_SALT, key_derivation="none")

    def make(self, subscriber_id: int, email: str, campaign: str, digest: str) -> str:
        return signed(self._key, f"{subscriber_id}.{self.tokens.binding(email)}.{digest[:12]}.{campaign}")

    def read(self, token: str) -> ViewLink | None:
        """What a token names; None for anything this workspace did not sign."""
        try:
            subscriber, binding, digest, campaign = self._signer.unsign(token).decode("ascii").split(".", 3)
        except (BadSignature, UnicodeDecodeError, ValueError):
            return None
        return ViewLink(int(subscriber), binding, digest, campaign) if subscriber.isdigit() else None


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
        self._tracked: dict[tuple[bool, bool], tuple[Prepared, Prepared]] = {}
        self._views = VIEW_FIELDS & (self.html.fields | self.text.fields)
        if self._views:
            self._digest = content.digest
            self._view_tokens = ViewTokens(tokens)
            base = workspace.archive.base_url
            self._archive = f"{base}/{archive_path(slug, self._digest)}" if base else None

    @cached_property
    def tracking(self) -> Tracking:
        """[tracking] as the campaign has it (the workspace's, if its settings no longer load)."""
        try:
            return load_campaign(self.workspace, self.slug).tracking
        except CampaignError:
            return self.workspace.tracking

    @cached_property
    def links(self) -> tuple[str, ...]:
        """The send's link table: link n's address is links[n - 1] (see engagement.links)."""
        return numbering(self.html, self.text, self.workspace.unsubscribe_url)

    def tracked(self, opens: bool, clicks: bool) -> tuple[Prepared, Prepared]:
        """The HTML and text with a slot for each message's tokens (the open pixel, the links), and
        the footer's notice of tracking in them."""
        key = (opens, clicks)
        if key not in self._tracked:
            code = TrackingTokens(self.tokens.secret).code
            html, text = tracked(self.html, self.text, self.workspace.unsubscribe_url, code, opens=opens, clicks=clicks)
            # Every tracked copy states the same notice: written into these parts once.
            self._tracked[key] = (html.settled(NOTICE, self.notice, html=True),
                                  text.settled(NOTICE, self.notice, html=False))
        return self._tracked[key]

    def token(self, recipient: Recipient) -> str:
        if recipient.subscriber_id is None:
            return SAMPLE
        return self.tokens.make(recipient.subscriber_id, recipient.email, self.slug)

    def values(self, recipient: Recipient) -> dict[str, object]:
        """What the recipient's merge tags are filled with: their values and their own links (and,
        when the campaign is tracked, the footer's notice of it; see delivery.mime for who is not)."""
        return {**recipient.values, **links(self.workspace, self.token(recipient)), **self.view_links(recipient),
                NOTICE: self.notice}

    @cached_property
    def notice(self) -> PerPart | str:
        """The footer's statement of tracking: after the reason in the HTML; in the text part, on lines
        of its own wrapped like the rest (the text footer writes the tag straight after the reason)."""
        notice = self.tracking.notice if self.tracking.on else ""
        return PerPart(notice, "\n" + wrap(notice)) if notice else ""

    def view_links(self, recipient: Recipient) -> dict[str, str]:
        """The reader's own copy on `campaign serve`, and an occurrence's page in the archive (that
        copy when there is no archive): one signature per message, and only if the email links there."""
        if not self._views:
            return {}
        view = None
        if "view_url" in self._views or self._archive is None:
            token = SAMPLE if recipient.subscriber_id is None else self._view_tokens.make(
                recipient.subscriber_id, recipient.email, self.slug, self._digest)
            view = f"{self.workspace.unsubscribe_url}/view/{token}"
        return {"view_url": view or "", "archive_url": self._archive or view or ""}

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
