"""What `campaign preview` shows: a campaign's latest build or why it failed, one recipient's copy,
and that copy as the message a mail client would receive.

The web server (preview_server.py) and the screenshot (browser.py) only present what this module
builds, so a preview never differs from what `campaign render` writes.
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.audience.recipients import Recipient, preview_recipients, sample_recipient
from pipeline.audience.segments import segment_or_everyone
from pipeline.audience.tokens import Tokens
from pipeline.content.build import Build, build_campaign
from pipeline.content.images import PICTURES, shown_locally
from pipeline.content.render import Renderer
from pipeline.db.engine import Store
from pipeline.delivery.mime import MessageFactory
from pipeline.delivery.personalise import Copy, Personaliser
from pipeline.errors import CampaignError, NotFoundError
from pipeline.settings.campaign import load_campaign
from pipeline.settings.tables import SETTINGS_NAME
from pipeline.settings.workspace import Workspace
from pipeline.web.browser import screenshot_html

# Called on every rebuild, so a list read from the subscriber store stays current.
RecipientSource = Callable[[], Sequence[Recipient]]


def find_recipient(recipients: Sequence[Recipient], who: str) -> int:
    """The index of `--as WHO`: a recipient's label or e-mail address."""
    for index, recipient in enumerate(recipients):
        if who == recipient.label or who.lower() == recipient.email.lower():
            return index
    known = ", ".join(f"{r.label} <{r.email}>" for r in recipients) or "none"
    raise NotFoundError(f"no recipient {who!r} to preview as (known: {known})")


def campaign_recipients(store: Store, workspace: Workspace, slug: str, also: str | None = None) -> list[Recipient]:
    """Whom the picker offers: the sample, then the first readers of the campaign's segment."""
    settings = load_campaign(workspace, slug)
    with store.reading() as conn:
        segment = segment_or_everyone(conn, settings.segment, workspace.segments)
        return preview_recipients(conn, segment, also)


@dataclass(frozen=True)
class Snapshot:
    """One build's outcome: every rebuild replaces it whole, so readers never see half of one."""

    version: int
    build: Build | None
    error: CampaignError | None
    recipients: tuple[Recipient, ...]
    factory: MessageFactory | None = None  # the build's messages, made as `campaign send` makes them

    def built(self) -> tuple[Build, MessageFactory]:
        """The build and its messages, or the error that stopped it, raised again."""
        if self.build is None or self.factory is None:
            raise self.error or CampaignError("not built yet")
        return self.build, self.factory

    def recipient(self, index: int) -> Recipient:
        if not 0 <= index < len(self.recipients):
            raise NotFoundError(f"no recipient number {index} (there are {len(self.recipients)})")
        return self.recipients[index]

    def copy(self, index: int) -> Copy:
        """Recipient number index's subject, HTML and text, exactly as their message carries them."""
        return self.built()[1].personaliser.copy(self.recipient(index))

    def message(self, index: int) -> bytes:
        """Their whole message as `campaign send` builds it (a preview has no send: its
        Message-ID names send 0)."""
        return self.built()[1].build(self.recipient(index))[1]


class Preview:
    """One campaign, rebuilt from its files on demand; a user's mistake becomes the snapshot's error."""

    def __init__(self, workspace: Workspace, slug: str, recipients: RecipientSource | None = None) -> None:
        if slug not in workspace.campaign_slugs():
            # Fails with the error `render` gives: no page could ever show a campaign that is not there.
            load_campaign(workspace, slug)
        self.workspace = workspace
        self.slug = slug
        self._recipients = recipients or (lambda: [sample_recipient()])
        self.tokens = Tokens.of_workspace(workspace.root)
        self._articles: tuple[Path, ...] = ()
        self._images: frozenset[Path] = frozenset()  # the picture files of the last build that had them
        self._lock = threading.Lock()
        self.state = Snapshot(0, None, None, ())
        self.rebuild()

    def rebuild(self) -> Snapshot:
        with self._lock:
            recipients = self.state.recipients
            try:
                recipients = tuple(self._recipients())
                # Known before building, so that fixing a broken article is seen as a change too.
                self._articles = load_campaign(self.workspace, self.slug).articles
                # A fresh Renderer: a shared one could serve its cached copy of a template just edited.
                build = build_campaign(self.workspace, self.slug, Renderer(self.workspace, fresh=True))
                self._images = frozenset(a.file for a in build.rendered.newsletter.assets if a.file)
                personaliser = Personaliser(self.workspace, build.content, self.slug, self.tokens)
                factory, error = MessageFactory(personaliser, 0), None
            except CampaignError as exc:
                build, factory, error = None, None, exc
            self.state = Snapshot(self.state.version + 1, build, error, recipients, factory)
            return self.state

    @property
    def campaign_dir(self) -> Path:
        return self.workspace.campaign_dir(self.slug)

    def watch_roots(self) -> list[Path]:
        """Folders whose changes can alter the email; an article may live outside the campaign's."""
        candidates = [self.workspace.templates_dir, self.campaign_dir, *(a.parent for a in self._articles),
                      *(image.parent for image in self._images)]
        roots: list[Path] = []
        for path in sorted({p.resolve() for p in candidates if p.is_dir()}):
            if not any(path.is_relative_to(root) for root in roots):
                roots.append(path)
        return roots

    def is_watched(self, path: Path) -> bool:
        """Whether a changed file feeds the build: a template, the settings, an article or one of
        its pictures (one it shows, or any beside it: a missing picture put in place counts too)."""
        path = path.resolve()
        if path.is_relative_to(self.workspace.templates_dir.resolve()):
            return True
        if path == (self.campaign_dir / SETTINGS_NAME).resolve():
            return True
        articles = {a.resolve() for a in self._articles}
        if path in articles or path in self._images:
            return True
        return path.suffix.lower() in PICTURES and any(path.is_relative_to(a.parent) for a in articles)

    def screenshot(self, who: str, width: int) -> bytes:
        """A PNG of WHO's copy at width CSS pixels, as tall as the email, its articles' pictures
        shown from this machine; a failed build is raised."""
        state = self.state
        assets = state.built()[0].rendered.newsletter.assets
        html = shown_locally(state.copy(find_recipient(state.recipients, who)).html, assets)
        return screenshot_html(html, width, {f"assets/{a.name}": a.data for a in assets})


def message_headers(message: bytes) -> str:
    """The top-level headers as a reader sees them: unfolded and decoded, one a line."""
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    return "".join(f"{name}: {str(value).strip()}\n" for name, value in parsed.items())


_DARK = re.compile(r"\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.IGNORECASE)
_LIGHT = re.compile(r"\(\s*prefers-color-scheme\s*:\s*light\s*\)", re.IGNORECASE)
_SCHEME_META = re.compile(r'(<meta\s+name="color-scheme"\s+content=")[^"]*(")', re.IGNORECASE)
_HEAD_END = re.compile(r"</head>", re.IGNORECASE)


def force_dark(html: str) -> str:
    """The email as a dark-mode client shows it, whatever the viewer's own setting.

    Inside an iframe a browser answers prefers-color-scheme from the viewer's system, so a
    toggle on the page cannot flip it; turning the queries into always-true and always-false
    ones applies the email's own dark rules instead.
    """
    html = _DARK.sub("(min-width: 0px)", html)
    html = _LIGHT.sub("(max-width: 0px)", html)
    html = _SCHEME_META.sub(r"\1dark\2", html)
    style = "<style>:root { color-scheme: dark !important; }</style>"
    forced, count = _HEAD_END.subn(style + "</head>", html, count=1)
    return forced if count else style + html
