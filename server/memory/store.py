"""Blocking SQL operations on the memory tables (called through `Database.run`, off the loop).

Every function takes the session of one transaction; the engine decides what
belongs together. Ids handed in from outside are checked here (NotFound).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import Subquery, delete, func, or_, select, union_all, update
from sqlalchemy.orm import Session, defer

from server.memory.errors import NotFound
from server.memory.models import (
    ACTIVE,
    MERGED,
    MemoryRow,
    RelationRow,
    StateRow,
    TurnRow,
    VectorRow,
    utcnow,
)

CHUNK = 5000


@dataclass
class NewMemory:
    text: str
    embedding: np.ndarray
    model: str
    importance: float
    occurred_at: datetime
    session_id: str = ""
    source: str = "user"
    tags: list[str] = field(default_factory=list)
    turn_id: str = ""
    reply: str = ""
    # The memory's vectors in further channels (model -> vector): memory_vectors rows.
    more_vectors: dict[str, np.ndarray] = field(default_factory=dict)


def insert_memory(s: Session, new: NewMemory) -> MemoryRow:
    """Store a memory and link it after the latest memory of its session."""
    now = utcnow()
    row = MemoryRow(
        text=new.text, reply=new.reply, session_id=new.session_id, turn_id=new.turn_id,
        source=new.source, tags=list(new.tags), importance=new.importance, occurred_at=new.occurred_at,
        created_at=now, decayed_at=now, access_count=0, delete_reason=ACTIVE,
        embedding=np.asarray(new.embedding, dtype="<f4").tobytes(), embedding_model=new.model,
    )
    prev: MemoryRow | None = None
    if new.session_id:
        prev = s.scalars(select(MemoryRow).where(MemoryRow.session_id == new.session_id)
                         .order_by(MemoryRow.id.desc()).limit(1)).first()
    s.add(row)
    s.flush()
    if prev is not None:
        row.prev_id = prev.id
        prev.next_id = row.id
    add_vectors(s, row.id, new.more_vectors)
    return row


def add_vectors(s: Session, memory_id: int, by_model: dict[str, np.ndarray]) -> None:
    """Store (or replace) a memory's vectors in further channels."""
    for model, vec in by_model.items():
        s.merge(VectorRow(memory_id=memory_id, model=model, embedding=np.asarray(vec, dtype="<f4").tobytes()))


def get_memory(s: Session, memory_id: int) -> MemoryRow:
    row = s.get(MemoryRow, memory_id)
    if row is None:
        raise NotFound(f"memory {memory_id} does not exist")
    return row


def active_rows(s: Session, ids: list[int], with_embedding: bool = True) -> dict[int, MemoryRow]:
    if not ids:
        return {}
    q = select(MemoryRow).where(MemoryRow.id.in_(ids), MemoryRow.delete_reason == ACTIVE)
    if not with_embedding:
        q = q.options(defer(MemoryRow.embedding))
    return {r.id: r for r in s.scalars(q)}


@dataclass
class MemoryRecord:
    """A memory row without its embedding, read with plain SQL (recall's hot path)."""

    id: int
    text: str
    reply: str
    session_id: str
    turn_id: str
    source: str
    tags: list[str]
    importance: float
    occurred_at: datetime
    created_at: datetime
    last_accessed_at: datetime | None
    access_count: int
    prev_id: int | None
    next_id: int | None
    delete_reason: int
    merged_into_id: int | None


_RECORD_COLUMNS = [getattr(MemoryRow, name) for name in MemoryRecord.__dataclass_fields__]


def active_records(s: Session, ids: list[int]) -> dict[int, MemoryRecord]:
    """The active memories among `ids`, without ORM objects or embeddings."""
    if not ids:
        return {}
    q = select(*_RECORD_COLUMNS).where(MemoryRow.id.in_(ids), MemoryRow.delete_reason == ACTIVE)
    return {r.id: MemoryRecord(*r) for r in s.execute(q)}


def scoring_rows(s: Session) -> Iterator[tuple[int, float, float, bool]]:
    """(id, importance, occurred_at epoch, active) of every memory, for the scoring cache."""
    q = select(MemoryRow.id, MemoryRow.importance, MemoryRow.occurred_at, MemoryRow.delete_reason)
    for mid, imp, at, reason in s.execute(q).yield_per(CHUNK):
        yield int(mid), float(imp), at.timestamp(), reason == ACTIVE


def texts_of(s: Session, ids: list[int]) -> dict[int, tuple[str, datetime]]:
    """Text and time of the given memories that are active (context lines)."""
    if not ids:
        return {}
    rows = s.execute(select(MemoryRow.id, MemoryRow.text, MemoryRow.occurred_at)
                     .where(MemoryRow.id.in_(ids), MemoryRow.delete_reason == ACTIVE))
    return {i: (t, at) for i, t, at in rows}


def merged_from(s: Session, memory_id: int) -> list[int]:
    return list(s.scalars(select(MemoryRow.id).where(MemoryRow.merged_into_id == memory_id,
                                                     MemoryRow.delete_reason == MERGED)))


def relations_of(s: Session, memory_id: int, limit: int = 50) -> list[RelationRow]:
    return list(s.scalars(select(RelationRow)
                          .where(or_(RelationRow.a_id == memory_id, RelationRow.b_id == memory_id))
                          .order_by(RelationRow.weight.desc()).limit(limit)))


def add_relation_weight(s: Session, a: int, b: int, kind: str, weight: float) -> RelationRow:
    """Add `weight` to the (a, b, kind) relation, creating it; the result is capped at 1."""
    a, b = min(a, b), max(a, b)
    now = utcnow()
    row = s.get(RelationRow, (a, b, kind))
    if row is None:
        row = RelationRow(a_id=a, b_id=b, kind=kind, weight=min(1.0, weight), created_at=now, updated_at=now)
        s.add(row)
    else:
        row.weight = min(1.0, row.weight + weight)
        row.updated_at = now
    s.flush()
    return row


def all_edges(s: Session) -> Iterator[tuple[int, int, float]]:
    """Every relation (summed over kinds, capped at 1) between active memories' ids."""
    q = (select(RelationRow.a_id, RelationRow.b_id, func.sum(RelationRow.weight))
         .group_by(RelationRow.a_id, RelationRow.b_id))
    for a, b, w in s.execute(q).yield_per(CHUNK):
        yield int(a), int(b), min(1.0, float(w))


def touch(s: Session, ids: list[int], reinforce: float) -> None:
    """Count a recall: access count, time, and a small importance reinforcement."""
    if not ids:
        return
    s.execute(update(MemoryRow).where(MemoryRow.id.in_(ids)).values(
        access_count=MemoryRow.access_count + 1,
        last_accessed_at=utcnow(),
        importance=MemoryRow.importance + reinforce * (1.0 - MemoryRow.importance),
    ))


def soft_delete(s: Session, memory_id: int, reason: int, merged_into: int | None = None) -> bool:
    row = get_memory(s, memory_id)
    if row.delete_reason != ACTIVE:
        return False
    row.delete_reason = reason
    row.deleted_at = utcnow()
    row.merged_into_id = merged_into
    return True


def erase(s: Session, memory_id: int) -> None:
    """Remove a memory for good: its row, its relations, and splice the session chain."""
    row = get_memory(s, memory_id)
    if row.prev_id is not None:
        s.execute(update(MemoryRow).where(MemoryRow.id == row.prev_id).values(next_id=row.next_id))
    if row.next_id is not None:
        s.execute(update(MemoryRow).where(MemoryRow.id == row.next_id).values(prev_id=row.prev_id))
    s.execute(delete(RelationRow).where(or_(RelationRow.a_id == memory_id, RelationRow.b_id == memory_id)))
    s.execute(delete(VectorRow).where(VectorRow.memory_id == memory_id))
    s.execute(update(TurnRow).where(TurnRow.memory_id == memory_id).values(memory_id=None))
    s.execute(update(MemoryRow).where(MemoryRow.merged_into_id == memory_id).values(merged_into_id=None))
    s.delete(row)


RESTORED_IMPORTANCE = 0.3


def restore(s: Session, memory_id: int) -> MemoryRow:
    """Make a memory active again, important enough that the secretary does not forget it at once."""
    row = get_memory(s, memory_id)
    row.importance = max(row.importance, RESTORED_IMPORTANCE)
    row.delete_reason = ACTIVE
    row.deleted_at = None
    row.merged_into_id = None
    row.decayed_at = utcnow()
    return row


def find_turn(s: Session, session_id: str, turn_id: str) -> TurnRow | None:
    return s.scalars(select(TurnRow).where(TurnRow.session_id == session_id,
                                           TurnRow.turn_id == turn_id)).first()


def _vectors_of(model: str) -> Subquery:
    """(id, embedding) of the active memories with a vector in `model`'s space: on the row or in memory_vectors."""
    own = select(MemoryRow.id, MemoryRow.embedding).where(MemoryRow.delete_reason == ACTIVE,
                                                          MemoryRow.embedding_model == model)
    more = (select(VectorRow.memory_id, VectorRow.embedding).join(MemoryRow, MemoryRow.id == VectorRow.memory_id)
            .where(MemoryRow.delete_reason == ACTIVE, VectorRow.model == model, MemoryRow.embedding_model != model))
    return union_all(own, more).subquery()


def active_ids(s: Session, model: str) -> np.ndarray:
    ids = s.scalars(select(_vectors_of(model).c.id)).all()
    return np.asarray(sorted(ids), dtype=np.int64)


def without_vector(s: Session, model: str, after: int, limit: int) -> list[tuple[int, str]]:
    """(id, text) of active memories with no vector in `model`'s space, by id after `after`."""
    has_more = select(VectorRow.memory_id).where(VectorRow.memory_id == MemoryRow.id, VectorRow.model == model)
    q = (select(MemoryRow.id, MemoryRow.text).where(MemoryRow.delete_reason == ACTIVE, MemoryRow.id > after,
                                                    MemoryRow.embedding_model != model, ~has_more.exists())
         .order_by(MemoryRow.id).limit(limit))
    return [(int(i), str(t)) for i, t in s.execute(q)]


def vectors(s: Session, model: str, ids: np.ndarray | None, dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stored embeddings of active rows (all, or the given ids), in chunks."""
    def chunks() -> Iterator[list[int] | None]:
        if ids is None:
            yield None
        else:
            for i in range(0, len(ids), CHUNK):
                yield [int(x) for x in ids[i : i + CHUNK]]

    both = _vectors_of(model)
    for part in chunks():
        q = select(both.c.id, both.c.embedding)
        if part is not None:
            q = q.where(both.c.id.in_(part))
        batch_ids: list[int] = []
        blobs: list[bytes] = []
        for mid, blob in s.execute(q.order_by(both.c.id)).yield_per(CHUNK):
            batch_ids.append(mid)
            blobs.append(blob)
            if len(batch_ids) >= CHUNK:
                yield _pack(batch_ids, blobs, dim)
                batch_ids, blobs = [], []
        if batch_ids:
            yield _pack(batch_ids, blobs, dim)


def _pack(ids: list[int], blobs: list[bytes], dim: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(ids, dtype=np.int64),
            np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(ids), dim))


def texts(s: Session) -> Iterator[tuple[int, str]]:
    q = select(MemoryRow.id, MemoryRow.text).where(MemoryRow.delete_reason == ACTIVE)
    for mid, text in s.execute(q).yield_per(CHUNK):
        yield int(mid), text


def get_state(s: Session, key: str) -> str | None:
    row = s.get(StateRow, key)
    return None if row is None else row.value


def set_state(s: Session, key: str, value: str) -> None:
    row = s.get(StateRow, key)
    if row is None:
        s.add(StateRow(key=key, value=value))
    else:
        row.value = value


@dataclass
class Counts:
    active: int
    inactive: int
    relations: int
    turns: int


def counts(s: Session) -> Counts:
    active = s.scalar(select(func.count()).select_from(MemoryRow).where(MemoryRow.delete_reason == ACTIVE))
    total = s.scalar(select(func.count()).select_from(MemoryRow))
    rels = s.scalar(select(func.count()).select_from(RelationRow))
    turns = s.scalar(select(func.count()).select_from(TurnRow))
    return Counts(int(active or 0), int((total or 0) - (active or 0)), int(rels or 0), int(turns or 0))
