"""Lines that are about an article rather than of it: dates, bylines, and the website around it.

Pasted text and saved pages carry the same furniture: a date under the byline, a "Share this
article: Facebook Twitter Email" row, "Tags: ..." and "Categories: ..." lists, "Follow us on
...". The text and HTML readers use these to keep such lines out of the newsletter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
    "oct": 10, "nov": 11, "dec": 12,
}
_MONTH = "(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_WEEKDAY = r"(?:(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?\.?,?\s+)?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_TIME = r"(?:,?\s+(?:at\s+)?\d{1,2}[:.]\d{2}(?:\s*[ap]\.?m\.?)?(?:\s+[A-Z]{2,4})?)?"
_DATES = [re.compile(rf"^{_WEEKDAY}{pattern}{_TIME}$", re.IGNORECASE) for pattern in (
    rf"{_MONTH}\s+{_DAY},?\s+{_YEAR}",                       # March 14, 2025 · Fri, Mar. 14th 2025
    rf"{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}",             # 14 March 2025 · 14th of March, 2025
    rf"{_YEAR}-(?P<m>\d{{1,2}})-(?P<d>\d{{1,2}})(?:[T ]\d{{2}}:\d{{2}}(?::\d{{2}})?Z?)?",  # 2025-03-14
    rf"{_YEAR}/(?P<m>\d{{1,2}})/(?P<d>\d{{1,2}})",           # 2025/03/14
    rf"(?P<a>\d{{1,2}})[/.](?P<b>\d{{1,2}})[/.]{_YEAR}",     # 14/03/2025, 03/14/2025, 14.03.2025
)]
_DATE_LABEL = re.compile(r"^(?:(?:posted|published|updated|last updated|written|date)(?:\s+on)?\s*:?\s+)", re.IGNORECASE)
_READING_TIME = re.compile(r"^\d{1,3}\s*(?:-|\s)?min(?:ute)?s?(?: read)?$", re.IGNORECASE)
_SEPARATORS = re.compile(r"\s+[|·•—–-]\s+|\s*\|\s*")
_BYLINE = re.compile(r"^(?:by|written by|words by|posted by|author:)\s+(?P<name>\S.{0,58})$", re.IGNORECASE)


@dataclass(frozen=True)
class DateLine:
    """A line that is only a date. `value` is None when it could be read two ways (04/03/2025)."""

    value: date | None
    ambiguous: bool = False


def date_line(text: str) -> DateLine | None:
    """The date a line consists of, in any common English form; None for any other line.

    Numeric dates go by the part that cannot be a month: 14/03/2025 is 14 March and 03/14/2025
    is 14 March too. When both parts could be the month (04/03/2025) the line is still a date
    line, but which date is left open rather than guessed.
    """
    text = _DATE_LABEL.sub("", text.strip()).strip()
    for pattern in _DATES:
        match = pattern.match(text)
        if not match:
            continue
        parts = match.groupdict()
        year = int(parts["year"])
        if parts.get("month"):
            month, day = _MONTHS[parts["month"].lower()], int(parts["day"])
        elif parts.get("m"):
            month, day = int(parts["m"]), int(parts["d"])
        else:
            a, b = int(parts["a"]), int(parts["b"])
            if a <= 12 and b <= 12 and a != b:
                return DateLine(None, ambiguous=True) if _valid(year, a, b) or _valid(year, b, a) else None
            day, month = (a, b) if a > 12 or a == b else (b, a)
        return DateLine(date(year, month, day)) if _valid(year, month, day) else None
    return None


def _valid(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Meta:
    author: str | None
    date: DateLine | None


def meta_line(text: str) -> Meta | None:
    """A byline, a date line, or both ("By Ana Lima | March 14, 2025", "Posted on 14 March 2025
    by Ana Lima", "March 14, 2025 · 4 min read"); None when the line says anything else."""
    author: str | None = None
    found: DateLine | None = None
    for piece in _SEPARATORS.split(text.strip()):
        piece = piece.strip().strip(",")
        if not piece:
            continue
        by = re.match(r"^(?P<date>.+?),?\s+by\s+(?P<name>\S.{0,58})$", piece, re.IGNORECASE)
        if by and date_line(by.group("date")):
            found, author = date_line(by.group("date")), by.group("name").strip()
        elif date_line(piece):
            found = date_line(piece)
        elif _READING_TIME.match(piece):
            pass
        elif (byline := _BYLINE.match(piece)) and not piece.rstrip().endswith("."):
            author = byline.group("name").strip()
            if author.lower().startswith("by "):
                author = author[3:].strip()
        else:
            return None
    if author is None and found is None:
        return None
    return Meta(author, found)


_SOCIAL = (r"facebook|twitter|x|linkedin|pinterest|whatsapp|telegram|reddit|tumblr|email|e-mail|mail|"
           r"print|instagram|youtube|tiktok|threads|bluesky|mastodon|messenger|sms|copy link|flipboard")
_SOCIAL_RUN = rf"(?:(?:{_SOCIAL})(?:\s*[|·•,/]\s*|\s+|$))+"
_WEBSITE = [re.compile(p, re.IGNORECASE) for p in (
    rf"^share(?: this| it)?(?: (?:article|post|page|story|recipe))?(?: on| via| to| with)?\s*[:!]?\s*(?:{_SOCIAL_RUN})?$",
    rf"^{_SOCIAL_RUN}$",
    r"^(?:tags?|tagged(?: with| as| in)?|categor(?:y|ies)|filed (?:under|in)|posted in|topics?|labels?|keywords?)\s*:\s*\S.*$",
    (r"^(?:read also|see also|also read|read more|read next|related(?: (?:articles?|posts?|stories|reading))?|"
     r"you (?:may|might) also (?:like|enjoy))\s*:\s*\S.*$"),
    r"^pin (?:it|this)(?: post| image| article)?(?: for later)?\W*$",
)]
_CLOSING = [re.compile(p, re.IGNORECASE) for p in (
    r"^follow (?:us|me|along)\b.{0,80}$",
    (r"^(?:like this|leave a (?:comment|reply)|\d+ (?:comments?|responses?)|no comments(?: yet)?|comments?|"
     r"print(?: this(?: page| article| post)?)?|back to top|(?:previous|next|older|newer) (?:post|article|entry)s?|"
     r"share this|related(?: (?:articles?|posts?|stories))?|you (?:may|might) also (?:like|enjoy))\W*$"),
)]


def website_line(text: str) -> bool:
    """A line that belongs to the website, wherever it stands: sharing rows, tag and category
    lists, "see also" pointers, "Pin it for later"."""
    text = " ".join(text.split())
    if not text:
        return False
    if any(p.match(text) for p in _WEBSITE):
        return True
    pieces = [piece for piece in re.split(r"\s*[|·•]\s*", text) if piece]
    return len(pieces) > 1 and all(any(p.match(piece) for p in _WEBSITE) for piece in pieces)


def closing_line(text: str) -> bool:
    """A website line, or one that only means something at a page's end ("Follow us on ...",
    "Leave a comment", "Next post")."""
    text = " ".join(text.split())
    return website_line(text) or any(p.match(text) for p in _CLOSING)


_RELATED_HEADING = re.compile(
    r"^(?:related(?: \w+)?|see also|read (?:more|next|also)|more (?:from|on|like this|stories|articles)\b.*|"
    r"you (?:may|might) also (?:like|enjoy)|popular(?: posts| articles| stories)?|recent(?: posts| articles| news)?|"
    r"latest(?: posts| articles| stories| news)?|most read|(?:audios?|videos?|podcasts?)(?: and \w+)? on (?:the|this) "
    r"(?:topic|subject))\W*$", re.IGNORECASE)


def related_heading(text: str) -> bool:
    """A heading over a list of links to other pages ("Related Subjects", "You may also like")."""
    return bool(_RELATED_HEADING.match(" ".join(text.split())))


_UNSAFE = re.compile(r"^(javascript|vbscript|data|file):", re.IGNORECASE)
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")


def unsafe_scheme(href: str) -> str | None:
    """"javascript" for javascript:..., and so on for the schemes a link in an email must never
    use; browsers ignore blanks and control characters inside a scheme, so this does too."""
    match = _UNSAFE.match(_INVISIBLE.sub("", href))
    return match.group(1).lower() if match else None
