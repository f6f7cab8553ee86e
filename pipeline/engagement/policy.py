"""Who is tracked in a send: [tracking] as the campaign has it, except readers who said no.

A reader tagged `no-tracking`, or with a custom field `no_tracking` (a column "no-tracking" in an
import becomes that field) set to anything but an empty or false value, gets copies without an
open pixel and with their links as they are: nothing of theirs is rewritten, nothing recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.audience.recipients import Recipient
from pipeline.db.engine import Store
from pipeline.settings.workspace import Tracking

OPT_OUT_TAG = "no-tracking"
OPT_OUT_FIELD = "no_tracking"
_NO = ("", "0", "false", "no", "n", "off")


def declined(tags: tuple[str, ...] | None, fields: Mapping[str, object]) -> bool:
    """Whether a reader said no to tracking, by their tags (when known) or their fields."""
    if tags is not None and OPT_OUT_TAG in tags:
        return True
    value = fields.get(OPT_OUT_FIELD)
    if value is None or value is False:
        return False
    return str(value).strip().lower() not in _NO


@dataclass(frozen=True)
class TrackingPlan:
    """What a send's copies track, and the readers (by subscriber id) who are not tracked."""

    opens: bool
    clicks: bool
    excluded: frozenset[int] = frozenset()

    @property
    def on(self) -> bool:
        return self.opens or self.clicks

    def tracks(self, recipient: Recipient) -> bool:
        return (recipient.subscriber_id is not None and recipient.subscriber_id not in self.excluded
                and not declined(None, recipient.values))


def plan_for(store: Store, tracking: Tracking) -> TrackingPlan | None:
    """The plan of a send whose campaign has `tracking`, with the readers tagged no-tracking now;
    None when nothing is tracked."""
    if not tracking.on:
        return None
    from pipeline.audience.segments import resolve
    from pipeline.audience.subscribers import iterate

    with store.reading() as conn:
        tagged = resolve(conn, f'"{OPT_OUT_TAG}" in tags', {}).where
        excluded = frozenset(s.id for s in iterate(conn, where=tagged))
    return TrackingPlan(tracking.opens, tracking.clicks, excluded)
