"""Alembic environment: runs on the connection handed over by `peromesh.server.memory.schema`."""

from __future__ import annotations

from alembic import context

from peromesh.server.memory.models import metadata
from peromesh.server.memory.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
