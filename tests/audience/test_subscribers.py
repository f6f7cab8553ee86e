from __future__ import annotations

import pytest
import sqlalchemy as sa

from pipeline.audience.subscribers import (
    Changes,
    add,
    count_by_status,
    erase,
    find,
    get,
    tag,
    unsubscribe,
    untag,
)
from pipeline.db.engine import Store
from pipeline.db.schema import subscriber_events, suppressions
from pipeline.errors import NotFoundError, SubscriberError


def test_add_then_update_merges_fields_and_tags(store: Store) -> None:
    with store.transaction() as conn:
        first, new = add(conn, "Ana@Example.COM", Changes(first_name="Ana", tags={"a"}, fields={"city": "Oslo"}), "t")
        assert new and first.email == "Ana@example.com"
        second, new = add(conn, "ana@example.com", Changes(tags={"b"}, fields={"zip": "0150"}), "t")
    assert not new
    assert (second.first_name, second.tags, second.fields) == ("Ana", ("a", "b"), {"city": "Oslo", "zip": "0150"})


def test_invalid_and_suppressed_addresses_are_refused(store: Store) -> None:
    with store.transaction() as conn:
        with pytest.raises(SubscriberError, match=r"^'nope' is not a valid e-mail address: "):
            add(conn, "nope", Changes(), "t")
        add(conn, "ana@example.com", Changes(), "t")
        assert unsubscribe(conn, ["ANA@example.com", "ana@example.com"], "t") == [
            ("ana@example.com", True), ("ana@example.com", False)]
        with pytest.raises(SubscriberError, match=r"^ana@example.com is unsubscribed; it stays off the list$"):
            add(conn, "ana@example.com", Changes(), "t")
        with pytest.raises(SubscriberError, match=r"cannot be a custom field name"):
            add(conn, "ben@example.com", Changes(fields={"status": "x"}), "t")


def test_erase_keeps_only_a_hash(store: Store) -> None:
    with store.transaction() as conn:
        add(conn, "ana@example.com", Changes(first_name="Ana", tags={"x"}), "t")
        assert erase(conn, "ana@example.com", "cli") == "ana@example.com"
        assert find(conn, "ana@example.com") is None
        with pytest.raises(SubscriberError, match="was erased and is suppressed"):
            add(conn, "ANA@example.com", Changes(), "t")
        rows = conn.execute(sa.select(suppressions.c.reason)).scalars().all()
        assert rows == ["erased"]
        kinds = conn.execute(sa.select(subscriber_events.c.kind, subscriber_events.c.subscriber_id)
                             .order_by(subscriber_events.c.id)).all()
        assert [tuple(k) for k in kinds] == [("subscribed", None), ("erased", None)]
        assert count_by_status(conn) == {"subscribed": 0, "unsubscribed": 0, "bounced": 0, "complained": 0, "pending": 0,
                                         "erased": 1}


def test_tag_untag_and_unknown_addresses(store: Store) -> None:
    with store.transaction() as conn:
        add(conn, "ana@example.com", Changes(), "t")
        add(conn, "ben@example.com", Changes(tags={"vip"}), "t")
        assert tag(conn, ["ana@example.com", "ben@example.com"], ["vip"]) == 1
        assert untag(conn, ["ben@example.com"], ["vip"]) == 1
        assert get(conn, "ana@example.com").tags == ("vip",)
        with pytest.raises(NotFoundError, match=r"^no subscriber 'zed@example.com'$"):
            tag(conn, ["zed@example.com"], ["vip"])
        with pytest.raises(SubscriberError, match="without commas"):
            tag(conn, ["ana@example.com"], ["a,b"])

