from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from pipeline.audience.segments import count, resolve, sample
from pipeline.audience.subscribers import Changes, add, get, set_status
from pipeline.db.engine import Store
from pipeline.db.schema import subscribers
from pipeline.errors import SegmentError

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SAVED = {"bp": '"back-pain" in tags', "bp-portland": 'segment("bp") and city == "Portland"',
         "loop-a": 'segment("loop-b")', "loop-b": 'segment("loop-a") or True'}
PEOPLE = [
    ("ana@example.com", Changes(first_name="Ana", last_name="Lopez", tags={"back-pain", "vip"},
                                fields={"city": "Portland", "birth_year": 1975}, timezone="America/Los_Angeles",
                                signed_up=datetime(2026, 10, 1, tzinfo=UTC))),
    ("ben@example.com", Changes(first_name="Ben", tags={"sleep"}, fields={"city": "San Francisco", "birth_year": 1990},
                                signed_up=datetime(2026, 1, 15, tzinfo=UTC))),
    ("cleo@clinic.example", Changes(first_name="Cleo", tags={"back-pain", "pregnant"},
                                    fields={"city": "San Francisco", "birth_year": 1985},
                                    signed_up=datetime(2026, 11, 1, tzinfo=UTC))),
    ("dan@example.com", Changes(fields={"zip": "02134"}, signed_up=datetime(2025, 6, 1, tzinfo=UTC))),
    ("eve@example.com", Changes(first_name="Eve", tags={"back-pain"}, fields={"city": "Portland", "birth_year": 1960},
                                signed_up=datetime(2026, 11, 2, tzinfo=UTC))),
    ("Fay@Example.org", Changes(first_name="Fay", fields={"vip": True, "city": "Tokyo", "birth_year": 2001},
                                signed_up=datetime(2026, 3, 3, tzinfo=UTC))),
]


@pytest.fixture
def people(store: Store) -> Store:
    with store.transaction() as conn:
        for address, changes in PEOPLE:
            add(conn, address, changes, "test")
        set_status(conn, get(conn, "eve@example.com"), "unsubscribed", "test")
    return store


def recipients(store: Store, expression: str) -> list[str]:
    with store.reading() as conn:
        segment = resolve(conn, expression, SAVED, now=NOW)
        emails = conn.execute(sa.select(subscribers.c.email_key).where(segment.recipients)
                              .order_by(subscribers.c.email_key)).scalars().all()
        assert count(conn, segment) == len(emails)
        return [e.split("@")[0] for e in emails]


@pytest.mark.parametrize(("expression", "expected"), [
    ('"back-pain" in tags', ["ana", "cleo"]),
    ('"pregnant" not in tags', ["ana", "ben", "dan", "fay"]),
    ('city == "San Francisco" and birth_year < 1988', ["cleo"]),
    ("signed_up >= days_ago(90)", ["ana", "cleo"]),
    ('email.endswith("@example.com")', ["ana", "ben", "dan"]),
    ('email.endswith("@EXAMPLE.ORG")', ["fay"]),
    ('email == "ANA@EXAMPLE.COM"', ["ana"]),
    ('not (city == "Portland" or "sleep" in tags)', ["cleo", "dan", "fay"]),
    ('city != "Portland"', ["ben", "cleo", "dan", "fay"]),
    ("city == None", ["dan"]),
    ("city is not None and first_name is None", []),
    ("vip == True", ["fay"]),
    ("vip != True", ["ana", "ben", "cleo", "dan"]),
    ('zip == "02134"', ["dan"]),
    ("1980 <= birth_year < 2000", ["ben", "cleo"]),
    ("birth_year > 1980.5", ["ben", "cleo", "fay"]),
    ("birth_year in [1975, 1990]", ["ana", "ben"]),
    ("birth_year in [1, 1975.4]", []),
    ("birth_year in [1990, 1975.0]", ["ana", "ben"]),
    ("birth_year != 1975", ["ben", "cleo", "dan", "fay"]),
    ("not birth_year == 1975", ["ben", "cleo", "dan", "fay"]),
    ('first_name.startswith("A")', ["ana"]),
    ('first_name.startswith("a")', []),
    ('"e" in first_name', ["ben", "cleo"]),
    ('city in ["Portland", "Tokyo"]', ["ana", "fay"]),
    ('city not in ("Portland", "Tokyo")', ["ben", "cleo", "dan"]),
    ('timezone == "America/Los_Angeles"', ["ana"]),
    ('segment("bp") and city == "Portland"', ["ana"]),
    ("bp-portland", ["ana"]),
    ('signed_up < date("2026-01-01")', ["dan"]),
    ('signed_up < "2026-01-01"', ["dan"]),
    ('status == "unsubscribed"', []),
    ("True", ["ana", "ben", "cleo", "dan", "fay"]),
    ('last_name > "A" or first_name <= "Bz"', ["ana", "ben"]),
])
def test_expressions_select_the_same_people_on_every_database(people: Store, expression: str,
                                                               expected: list[str]) -> None:
    assert recipients(people, expression) == expected


def test_user_values_are_bound_parameters_not_sql(people: Store) -> None:
    hostile = "x'); DROP TABLE subscribers; --"
    assert recipients(people, f'city == "{hostile}" or "{hostile}" in tags') == []
    with people.reading() as conn:
        segment = resolve(conn, f'city == "{hostile}"', SAVED, now=NOW)
        sql = str(sa.select(subscribers.c.id).where(segment.where).compile(conn))
        assert "DROP" not in sql
        assert conn.execute(sa.select(sa.func.count()).select_from(subscribers)).scalar() == 6


def test_sample_shows_recipients_in_order(people: Store) -> None:
    with people.reading() as conn:
        found = sample(conn, resolve(conn, "bp", SAVED, now=NOW), size=1)
    assert [s.email for s in found] == ["ana@example.com"]


@pytest.mark.parametrize(("expression", "message"), [
    ('cty == "Portland"', "segment expression, column 1: unknown field 'cty' (known: email, first_name, "
                          "last_name, tags, status, timezone, signed_up, birth_year, city, vip, zip)"),
    ('"back-pain" in tags and citty == 1', "segment expression, column 25: unknown field 'citty'"),
    ('__import__("os").system("rm -rf /")', "segment expression, column 1: '__import__' is not allowed: "
                                            "names starting with '_' are refused"),
    ("city.__class__", "segment expression, column 1: attribute access is not allowed"),
    ('city.upper() == "X"', "segment expression, column 6: .upper() is not allowed"),
    ("(lambda: True)()", "segment expression, column 1: only days_ago(), date(), segment(), received(), opened() "
                         "and clicked() can be called"),
    ("lambda: True", "segment expression, column 1: lambda is not allowed in a segment expression"),
    ("[t for t in tags]", "segment expression, column 1: a comprehension is not allowed"),
    ('open("/etc/passwd")', "segment expression, column 1: open() is not allowed (known functions: days_ago(), "
                            "date(), segment(), received(), opened(), clicked())"),
    ('city == "a" and 5', "segment expression, column 17: expected a condition here"),
    ('city ==', "segment expression, column 1: invalid syntax"),
    ('tags == "vip"', "segment expression, column 1: tags only works with 'in' and 'not in'"),
    ('city == "x" + "y"', "segment expression, column 9: arithmetic is not allowed"),
    ("birth_year < days_ago(3)", "segment expression, column 14: birth_year is not a date"),
    ('segment("nope")', "segment expression, column 9: no saved segment 'nope' (known: bp, bp-portland, "
                        "loop-a, loop-b)"),
    ("loop-a", "segment 'loop-b', column 9: saved segments refer to each other in a loop: loop-a -> loop-b -> "
               "loop-a"),
    ("first_name < 3", "segment expression, column 14: first_name holds text"),
    ("", "segment expression is empty"),
])
def test_bad_expressions_name_the_column(people: Store, expression: str, message: str) -> None:
    with people.reading() as conn, pytest.raises(SegmentError) as caught:
        resolve(conn, expression, SAVED, now=NOW)
    assert str(caught.value).startswith(message)


def test_received_selects_who_a_campaign_was_delivered_to(people: Store) -> None:
    from pipeline.db.schema import deliveries, sends

    with people.transaction() as conn:
        ids = {s.email.split("@")[0]: s.id for s in (get(conn, address) for address in ("ana@example.com",
                                                                                "ben@example.com", "cleo@clinic.example"))}
        for campaign, delivered in (("back-pain", {"ana": "sent", "ben": "failed"}), ("sleep", {"cleo": "sent"})):
            send_id = conn.execute(sends.insert().values(campaign=campaign, occurrence="", state="sent",
                                                         created_at=NOW, updated_at=NOW)).inserted_primary_key[0]
            conn.execute(deliveries.insert(), [{"send_id": send_id, "subscriber_id": ids[name], "state": state,
                                                "due_at": NOW, "attempts": 1, "updated_at": NOW}
                                               for name, state in delivered.items()])
    assert recipients(people, 'received("back-pain")') == ["ana"]  # ben's copy failed
    assert recipients(people, 'not received("back-pain") and received("sleep")') == ["cleo"]
    with pytest.raises(SegmentError, match='received\\(\\) takes a campaign name in quotes'):
        recipients(people, "received(1)")
