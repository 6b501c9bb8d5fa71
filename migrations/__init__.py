"""Alembic migrations: the only way the Postgres schema changes."""
