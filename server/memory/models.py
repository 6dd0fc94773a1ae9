"""SQL tables of the memory server. The rows are the truth: every index is rebuilt from them.

Tables carry a `memory_` prefix because several servers may share one
database (`--db-url`). Embeddings are stored with the row (float32 bytes; a
memory indexed by a further channel has that vector in `memory_vectors`), so
the HNSW index can be rebuilt without re-running the model.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from server.storage.utc import UtcDateTime

# Own metadata (not the shared Base): Alembic migrates exactly these tables.
metadata = MetaData()
Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


def utcnow() -> datetime:
    return datetime.now(UTC)


class MemoryBase(DeclarativeBase):
    metadata = metadata


ACTIVE = 0
REQUESTED = 1
FORGOTTEN = 2
MERGED = 3


class MemoryRow(MemoryBase):
    """One memory. `delete_reason` != 0 means soft-deleted (recoverable)."""

    __tablename__ = "memory_items"
    __table_args__ = (
        Index("ix_memory_items_session", "session_id", "id"),
        Index("ix_memory_items_active", "delete_reason", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    text: Mapped[str] = mapped_column(Text)
    reply: Mapped[str] = mapped_column(Text, default="")
    session_id: Mapped[str] = mapped_column(String(128), default="")
    turn_id: Mapped[str] = mapped_column(String(128), default="")
    source: Mapped[str] = mapped_column(String(32), default="user")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    importance: Mapped[float] = mapped_column(Float)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decayed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_accessed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    access_count: Mapped[int] = mapped_column(Integer, default=0)
    prev_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    next_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    delete_reason: Mapped[int] = mapped_column(SmallInteger, default=ACTIVE)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    merged_into_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    embedding_model: Mapped[str] = mapped_column(String(64))


class VectorRow(MemoryBase):
    """A memory's embedding in a further channel's space (its own is on the row).

    The cross-language channel stores every memory, so a Chinese question finds an
    English fact: an English memory has its MiniLM vector on the row and its
    multilingual (use-m3) vector here. Rows go with their memory (erase deletes them).
    """

    __tablename__ = "memory_vectors"

    memory_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)


class RelationRow(MemoryBase):
    """An undirected association; stored once with a_id < b_id, per kind."""

    __tablename__ = "memory_relations"
    __table_args__ = (Index("ix_memory_relations_b", "b_id"),)

    a_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    b_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    weight: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TurnRow(MemoryBase):
    """The conversation log: every finished turn, whether or not it became a memory."""

    __tablename__ = "memory_turns"
    __table_args__ = (UniqueConstraint("session_id", "turn_id", name="uq_memory_turns_session_turn"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(128))
    turn_id: Mapped[str] = mapped_column(String(128))
    user_text: Mapped[str] = mapped_column(Text)
    assistant_text: Mapped[str] = mapped_column(Text, default="")
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    memory_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class StateRow(MemoryBase):
    """Small key/value facts about the store (e.g. when the secretary last ran)."""

    __tablename__ = "memory_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
