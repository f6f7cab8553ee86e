"""Schema version 11: imported consents get tables of their own (db.schema: consent_imports and
imported_consents), and the records imports left in `consents` move there.

Before, each imported row's consent repeated its method, file and time in `consents`, with an
index beside it; a million-row import spent a fifth of its time writing them. Moved rows keep
every value: rows of one file recorded at one moment share one consent_imports row.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from pipeline.db.schema import consent_imports, imported_consents, metadata


def v11(conn: Connection) -> None:
    metadata.create_all(conn, tables=[consent_imports, imported_consents], checkfirst=True)
    conn.exec_driver_sql("INSERT INTO consent_imports (source, created_at) SELECT DISTINCT source, created_at "
                         "FROM consents WHERE method = 'import' ORDER BY created_at, source")
    conn.exec_driver_sql(
        "INSERT INTO imported_consents (subscriber_id, import_id, requested_at, requested_ip, confirmed_at, "
        "confirmed_ip) SELECT DISTINCT c.subscriber_id, i.id, c.requested_at, c.requested_ip, c.confirmed_at, "
        "c.confirmed_ip FROM consents c JOIN consent_imports i ON i.source = c.source AND i.created_at = c.created_at "
        "WHERE c.method = 'import'")
    conn.exec_driver_sql("DELETE FROM consents WHERE method = 'import'")
