"""The database: schema, migrations, engine and transactions."""
