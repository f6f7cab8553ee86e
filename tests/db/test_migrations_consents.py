"""Schema version 11 (db.migrations_consents): the consent records imports left in `consents`
move to the imported-consent tables with every value kept; signup records stay where they are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from pipeline.audience import consent
from pipeline.audience.subscribers import Changes, add, erase
from pipeline.db import migrations
from pipeline.db.engine import Store
from pipeline.db.migrations import current_version
from pipeline.db.schema import consent_imports, consents, imported_consents

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=30)


def version_10(db_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """A database as version 10 left it: imported consents in `consents`, one row each, beside a
    signup's record; ana was imported from two files, ben from one in two batches."""
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:10])
        patch.setattr(migrations, "SCHEMA_VERSION", 10)
        old = Store(db_url)
        with old.transaction() as conn:
            ids = {name: add(conn, f"{name}@example.com", Changes(), "test")[0].id for name in ("ana", "ben", "cleo")}
            rows = [(ids["ana"], "import:a.csv", EARLIER, "203.0.113.9", EARLIER, None, EARLIER),
                    (ids["ana"], "import:b.csv", NOW, None, None, "198.51.100.7", NOW),
                    (ids["ben"], "import:a.csv", EARLIER - timedelta(days=1), None, EARLIER, None,
                     EARLIER + timedelta(seconds=1)),
                    (ids["cleo"], "import:a.csv", EARLIER, None, None, None, EARLIER)]
            conn.execute(consents.insert(), [
                {"subscriber_id": sid, "method": "import", "source": source, "requested_at": requested,
                 "requested_ip": requested_ip, "confirmed_at": confirmed, "confirmed_ip": confirmed_ip,
                 "created_at": created} for sid, source, requested, requested_ip, confirmed, confirmed_ip, created in rows])
            consent.requested(conn, ids["ben"], consent.DOUBLE_OPT_IN, "Yes, mail me", "v1", None,
                              consent.Client("192.0.2.1", "Firefox"), "web:signup", NOW)
        old.close()
    return ids


def test_version_11_moves_imported_consents_keeping_every_value(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = version_10(db_url, monkeypatch)
    store = Store(db_url)
    with store.transaction() as conn:
        assert current_version(conn) == migrations.SCHEMA_VERSION >= 11
        ana = [(r.method, r.source, r.requested_at, r.requested_ip, r.confirmed_at, r.confirmed_ip)
               for r in consent.of_subscriber(conn, ids["ana"])]
        assert ana == [("import", "import:a.csv", EARLIER, "203.0.113.9", EARLIER, None),
                       ("import", "import:b.csv", NOW, None, None, "198.51.100.7")]
        ben = consent.of_subscriber(conn, ids["ben"])
        assert [(r.method, r.source, r.confirmed_at) for r in ben] == [("import", "import:a.csv", EARLIER),
                                                                      ("double-opt-in", "web:signup", None)]
        assert ben[0].id is None and ben[1].id is not None and ben[1].text == "Yes, mail me"
        assert conn.execute(sa.select(consents.c.method)).scalars().all() == ["double-opt-in"]
        # a.csv's two moments, b.csv's one
        assert conn.execute(sa.select(sa.func.count()).select_from(consent_imports)).scalar() == 3
        erase(conn, "cleo@example.com", "test")  # erasing still takes the records with it
        assert conn.execute(sa.select(imported_consents.c.subscriber_id)
                            .where(imported_consents.c.subscriber_id == ids["cleo"])).first() is None
    store.close()
