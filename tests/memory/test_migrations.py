"""Alembic: the migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from server.memory.models import metadata
from server.memory.schema import VERSION_TABLE, upgrade_to_head
from server.storage.db import Database


def test_upgrade_to_head_is_idempotent_and_matches_the_models(db_url: str) -> None:
    db = Database(db_url)
    try:
        upgrade_to_head(db.engine)
        upgrade_to_head(db.engine)  # a second start changes nothing
        with db.engine.connect() as conn:
            assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == "0002"
            context = MigrationContext.configure(conn, opts={
                "version_table": VERSION_TABLE,
                "include_name": lambda name, kind, _parent: kind != "table" or name.startswith("memory_"),
            })
            diff = compare_metadata(context, metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        assert "alembic_version" not in inspect(db.engine).get_table_names()  # our own version table
    finally:
        db.dispose()
