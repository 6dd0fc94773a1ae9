"""Alembic migrations of the memory tables (version table `memory_alembic_version`)."""
