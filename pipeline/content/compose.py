"""Article(s) plus a campaign's settings make a Newsletter: everything the templates show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

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
    )
