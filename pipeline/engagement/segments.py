"""opened() and clicked() in segment expressions: their arguments checked, and their condition.

    opened("back-pain")                         opened any send of that campaign
    clicked("back-pain")                        clicked any of its links
    clicked("back-pain", "https://...")         clicked that link (UTM parameters or not)
    opened("back-pain", machine=True)           counting privacy proxies and link scanners too
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa

from pipeline.db.schema import subscribers
from pipeline.engagement.events import CLICK, OPEN, engaged
from pipeline.settings.tables import SLUG

FUNCTIONS = {"opened": OPEN, "clicked": CLICK}
_USAGE = {"opened": 'opened("back-pain")', "clicked": 'clicked("back-pain") or clicked("back-pain", "https://...")'}


def problem(name: str, args: Sequence[object], keywords: Mapping[str | None, object]) -> tuple[int | None, str] | None:
    """What is wrong with a call's arguments, if anything: the argument's position among the
    arguments then the keywords' values (None: the call itself), and a message."""
    for at, (keyword, value) in enumerate(keywords.items(), start=len(args)):
        if keyword != "machine" or not isinstance(value, bool):
            return (at if keyword == "machine" else None,
                    f"{name}() takes only machine=True or machine=False after its arguments")
    if not 1 <= len(args) <= (2 if name == "clicked" else 1):
        return None, f"{name}() takes a campaign name, such as {_USAGE[name]}"
    if not isinstance(args[0], str) or not SLUG.match(args[0]):
        return 0, f'{name}() takes a campaign name in quotes, such as "back-pain"'
    if len(args) == 2 and (not isinstance(args[1], str) or not args[1].startswith(("https://", "http://"))):
        return 1, 'clicked() takes a link as its second argument, such as "https://clinic.example/book"'
    return None


def condition(name: str, args: Sequence[object], keywords: Mapping[str | None, object]) -> sa.ColumnElement[bool]:
    """The WHERE condition of a call whose arguments have no problem()."""
    url = args[1] if len(args) == 2 else None
    return subscribers.c.id.in_(engaged(FUNCTIONS[name], str(args[0]), str(url) if url else None,
                                        bool(keywords.get("machine", False))))
