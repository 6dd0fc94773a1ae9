"""Relational storage shared by the servers: SQLAlchemy engines and the model base."""
