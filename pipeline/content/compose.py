"""Article(s) plus a campaign's settings make a Newsletter: everything the templates show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pipeline.content.images import Asset, localise
from pipeline.content.merge import tag
from pipeline.content.models import Article, Image, Paragraph, plain
from pipeline.content.readers import read_article
from pipeline.content.readers.common import first_sentence, squash
from pipeline.settings.campaign import CallToAction, CampaignSettings
from pipeline.settings.workspace import Workspace

EXCERPT_WORDS = 40


@dataclass(frozen=True)
class DigestEntry:
    title: str
    excerpt: str
    image: Image | None
    url: str | None
    date: date | None


@dataclass(frozen=True)
class Newsletter:
    slug: str
    template: str
    subject: str
    preheader: str
    language: str
    article: Article | None
    entries: tuple[DigestEntry, ...]
    intro: str | None
    cta: CallToAction | None
    read_more: str
    disclaimer: str | None
    reason: str
    view_url: str = ""  # where "View in your browser" goes (view_link)
    assets: tuple[Asset, ...] = ()  # the articles' own image files, as the email refers to them


def archive_path(slug: str, digest: str | None = None) -> str:
    """A send's page in the public archive, relative to [archive] base_url: SLUG/ for a campaign sent
    once, SLUG/<first 12 of its content hash>/ for each occurrence of a recurring one."""
    return f"{slug}/" if digest is None else f"{slug}/{digest[:12]}/"


def view_link(workspace: Workspace, settings: CampaignSettings) -> str:
    """Where a message's "View in your browser" link goes: the campaign's page in the archive, or,
    with no [archive] base_url or `archive = false`, the reader's own copy on `campaign serve`
    (a merge tag the personalisation fills in). An occurrence of a recurring campaign learns its
    page only when its content is fixed, so it is a merge tag too."""
    base = workspace.archive.base_url
    if base is None or settings.archive is False:
        return tag("view_url")
    if settings.recurrence:
        return tag("archive_url")
    return f"{base}/{archive_path(settings.slug)}"


def default_preheader(article: Article, limit: int = 100) -> str:
    """The first sentence of the lead, or of the first paragraph when there is no lead, cut at a
    word to at most `limit` characters (inboxes show about that much) with an ellipsis."""
    sentence = ""
    if article.lead:
        sentence = first_sentence(plain(article.lead))
    else:
        for block in article.blocks():
            if isinstance(block, Paragraph) and not block.preformatted:
                sentence = first_sentence(plain(block.spans))
                break
    if len(sentence) <= limit:
        return sentence
    cut = sentence[:limit - 1]  # and one character for the ellipsis
    if not sentence[limit - 1].isspace() and " " in cut:
        cut = cut[:cut.rindex(" ")]
    return cut.rstrip(" ,;:.-–—") + "…"


def excerpt(article: Article, words: int = EXCERPT_WORDS) -> str:
    source = plain(article.lead)
    if not source:
        source = next((plain(b.spans) for b in article.blocks()
                       if isinstance(b, Paragraph) and not b.preformatted), "")
    parts = squash(source).split()
    return " ".join(parts) if len(parts) <= words else " ".join(parts[:words]).rstrip(",;:") + "…"


def digest_entry(article: Article) -> DigestEntry:
    image = article.hero_image or next((b for b in article.blocks() if isinstance(b, Image)), None)
    return DigestEntry(article.title, excerpt(article), image, article.canonical_url, article.date)


def compose(workspace: Workspace, settings: CampaignSettings, articles: list[Article] | None = None,
            subject: str | None = None) -> Newsletter:
    """The newsletter of a campaign: its article files, or the articles given (a digest's occurrence)."""
    if articles is None:
        articles = [read_article(path) for path in settings.articles]
    localised = [localise(workspace, a) for a in articles]
    articles = [article for article, _ in localised]
    assets = {asset.name: asset for _, found in localised for asset in found}  # a name is its bytes
    single = articles[0] if len(articles) == 1 else None
    preheader = settings.preheader
    if preheader is None:
        preheader = default_preheader(articles[0]) if single else (settings.intro or "")
    return Newsletter(
        slug=settings.slug,
        template=settings.template,
        subject=subject or settings.subject,
        preheader=preheader,
        language=workspace.brand.language,
        article=single,
        entries=tuple(digest_entry(a) for a in articles),
        intro=settings.intro,
        cta=settings.cta,
        read_more=settings.read_more,
        disclaimer=settings.disclaimer if settings.disclaimer is not None else workspace.defaults.disclaimer,
        reason=workspace.defaults.reason,
        view_url=view_link(workspace, settings),
        assets=tuple(assets.values()),
    )
