"""The memory secretary: background consolidation, also run on demand (Consolidate RPC).

One run, in order, each step idempotent (running twice in a row changes
nothing the second time):

1. Merge near-duplicates: every memory added since the last run is compared
   (HNSW) with its nearest active neighbours; above `merge_threshold` cosine
   and with at least `merge_min_overlap` Jaccard overlap of their words (cosine
   alone is noise for Chinese on an English-only model), the less important
   (on a tie, the newer) one is merged into the other:
   soft-deleted with reason MERGED and `merged_into_id` (provenance, visible as
   `merged_from_ids`), its tags, access count and relations carried over.
2. Decay: importance ← importance · 0.5^(Δt / importance_half_life), Δt being
   the time since the memory was last decayed (so a second run decays by ~0).
3. Forget: active memories below `forget_floor` that are older than a day
   and were never recalled are soft-deleted with reason FORGOTTEN (recoverable
   through RestoreMemory).
4. Strengthen: pairs of memories that recalls returned together gain
   `co_recall_weight` per co-recall on their "co_recall" relation (capped at 1).

It holds the engine's write lock one step at a time, so recall keeps serving
(reads never wait for it) and ingestion waits at most one step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.aio import TaskOwner
from server.memory import store
from server.memory.engine import MemoryEngine
from server.memory.models import ACTIVE, FORGOTTEN, MERGED, MemoryRow, RelationRow, utcnow
from server.memory.tokenize import overlap

log = logging.getLogger(__name__)
FORGET_MIN_AGE = timedelta(days=1)
MERGE_NEIGHBOURS = 5
MERGE_BATCH = 5000  # memories checked per run; a large backlog is worked through over several runs
DECAY_CHUNK = 2000


@dataclass
class Report:
    merged: int = 0
    decayed: int = 0
    forgotten: int = 0
    strengthened: int = 0
    seconds: float = 0.0


class Secretary:
    def __init__(self, engine: MemoryEngine) -> None:
        self.engine = engine
        self.config = engine.config
        self._run_lock = asyncio.Lock()
        self._tasks = TaskOwner("memory-secretary")

    def start(self) -> None:
        """Run every `secretary_interval_s` (and save the index every `index_save_interval_s`)."""
        if self.config.secretary_interval_s > 0:
            self._tasks.spawn(self._every(self.config.secretary_interval_s, self.run), "consolidate")
        if self.config.index_save_interval_s > 0:
            self._tasks.spawn(self._every(self.config.index_save_interval_s, self.engine.save_index), "save")

    async def close(self) -> None:
        await self._tasks.close()

    @staticmethod
    async def _every(interval: float, job) -> None:  # type: ignore[no-untyped-def]
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except Exception:
                log.exception("memory background job %s failed", getattr(job, "__name__", job))

    async def run(self) -> Report:
        async with self._run_lock:
            started = time.perf_counter()
            report = Report()
            report.merged = await self._merge()
            report.decayed = await self._decay()
            report.forgotten = await self._forget()
            report.strengthened = await self._strengthen()
            await asyncio.to_thread(self.engine.reload_scoring)  # importances changed in bulk
            now = utcnow().isoformat()
            await self.engine.db.run(lambda s: store.set_state(s, "consolidated_at", now))
            await self.engine.save_index()
            report.seconds = time.perf_counter() - started
            log.info("memory secretary: merged %d, decayed %d, forgot %d, strengthened %d in %.2fs",
                     report.merged, report.decayed, report.forgotten, report.strengthened, report.seconds)
            return report

    # -- 1. merge ----------------------------------------------------------------------------------

    async def _merge(self) -> int:
        eng = self.engine
        since = int(await eng.db.run(lambda s: store.get_state(s, "merge_checked_id")) or 0)
        fresh: list[tuple[int, bytes, str]] = await eng.db.run(lambda s: [
            (int(i), bytes(e), str(m)) for i, e, m in s.execute(
                select(MemoryRow.id, MemoryRow.embedding, MemoryRow.embedding_model).where(
                    MemoryRow.id > since, MemoryRow.delete_reason == ACTIVE).order_by(MemoryRow.id)
                .limit(MERGE_BATCH))])
        dropped: list[int] = []
        min_overlap = self.config.merge_min_overlap
        for mid, blob, model in fresh:
            channel = eng.channel_of_model(model)
            if channel is None:
                continue
            vec = np.frombuffer(blob, dtype="<f4")
            ids, sims = await asyncio.to_thread(channel.index.search, vec, MERGE_NEIGHBOURS + 1)
            for other, sim in zip(ids.tolist(), sims.tolist(), strict=True):
                if other != mid and sim >= self.config.merge_threshold:
                    async with eng.write_lock:
                        gone = await eng.db.run(lambda s, a=mid, b=other: _merge_pair(s, a, b, min_overlap))  # type: ignore[misc]
                        if gone is not None:
                            dropped.append(gone)
                            await asyncio.to_thread(eng._unindex, [gone])
                    break
        last = fresh[-1][0] if fresh else since
        await eng.db.run(lambda s: store.set_state(s, "merge_checked_id", str(last)))
        if dropped:  # relations moved to the survivors: rebuild the graph from SQL
            async with eng.write_lock:
                await asyncio.to_thread(eng.reload_graph)
        return len(dropped)

    # -- 2. decay ----------------------------------------------------------------------------------

    async def _decay(self) -> int:
        half_life = self.config.importance_half_life_s
        now = utcnow()

        def work(s: Session, after: int) -> tuple[int, int]:
            """Decay one chunk of ids above `after`; returns (changed, last id) — last 0 when done."""
            rows = s.execute(select(MemoryRow.id, MemoryRow.importance, MemoryRow.decayed_at)
                             .where(MemoryRow.delete_reason == ACTIVE, MemoryRow.id > after)
                             .order_by(MemoryRow.id).limit(DECAY_CHUNK)).all()
            changed = 0
            updates = []
            for mid, imp, at in rows:
                dt = (now - at).total_seconds()
                if dt <= 0:
                    continue
                new = imp * 0.5 ** (dt / half_life)
                if imp - new > 1e-6:
                    changed += 1
                updates.append({"id": mid, "importance": new, "decayed_at": now})
            if updates:
                s.execute(update(MemoryRow), updates)
            return changed, int(rows[-1][0]) if rows else 0

        # One chunk per transaction and per hold of the write lock, so ingestion waits at most one chunk.
        total, after = 0, 0
        while True:
            async with self.engine.write_lock:
                changed, after = await self.engine.db.run(lambda s, a=after: work(s, a))  # type: ignore[misc]
            total += changed
            if not after:
                return total

    # -- 3. forget ---------------------------------------------------------------------------------

    async def _forget(self) -> int:
        cutoff = utcnow() - FORGET_MIN_AGE
        floor = self.config.forget_floor

        def work(s: Session) -> list[int]:
            ids = list(s.scalars(select(MemoryRow.id).where(
                MemoryRow.delete_reason == ACTIVE, MemoryRow.importance < floor,
                MemoryRow.created_at < cutoff, MemoryRow.access_count == 0)))
            if ids:
                s.execute(update(MemoryRow).where(MemoryRow.id.in_(ids)).values(
                    delete_reason=FORGOTTEN, deleted_at=utcnow()))
            return ids

        async with self.engine.write_lock:
            ids = await self.engine.db.run(work)
            await asyncio.to_thread(self.engine._unindex, ids)
        return len(ids)

    # -- 4. strengthen -----------------------------------------------------------------------------

    async def _strengthen(self) -> int:
        eng = self.engine
        pairs = eng.co_recalled
        eng.co_recalled = type(pairs)()
        done = 0
        for (a, b), count in pairs.items():
            weight = min(1.0, self.config.co_recall_weight * count)
            async with eng.write_lock:
                alive = await eng.db.run(lambda s, a=a, b=b: len(store.active_rows(s, [a, b])) == 2)  # type: ignore[misc]
                if alive:
                    await eng._add_relation(a, b, "co_recall", weight)
                    done += 1
        return done


def _merge_pair(s: Session, a: int, b: int, min_overlap: float) -> int | None:
    """Merge the weaker of a, b into the stronger; returns the merged-away id (None if either is gone)."""
    rows = store.active_rows(s, [a, b])
    if len(rows) != 2:
        return None
    x, y = rows[a], rows[b]
    if overlap(x.text, y.text) < min_overlap:
        return None
    keep, drop = (x, y) if (x.importance, -x.id) >= (y.importance, -y.id) else (y, x)
    keep.tags = list(dict.fromkeys([*keep.tags, *drop.tags]))
    keep.access_count += drop.access_count
    keep.importance = max(keep.importance, drop.importance)
    drop.delete_reason = MERGED
    drop.deleted_at = utcnow()
    drop.merged_into_id = keep.id
    for rel in list(s.scalars(select(RelationRow).where(
            (RelationRow.a_id == drop.id) | (RelationRow.b_id == drop.id)))):
        other = rel.b_id if rel.a_id == drop.id else rel.a_id
        if other != keep.id:
            store.add_relation_weight(s, keep.id, other, rel.kind, rel.weight)
    return drop.id
