"""The memory engine: ingestion and retrieval paths over SQL, HNSW, BM25 and the association graph.

Retrieval (`recall`), each stage an OpenTelemetry span under `memory.recall`:
  embed the query → usearch top-k (semantic seeds) + BM25 top-k (lexical
  seeds) → spreading activation from the seeds over the relation graph
  (server.native) → fetch active rows with their prev/next context
  from SQL → rerank (rerank.py) → best first.

Ingestion (`add_memory`, `ingest_turn`): clean the text (native TextCleaner)
→ importance heuristic (importance.py) → store the row (with its embedding)
→ HNSW + BM25 → relations: temporal to the session's previous memory,
semantic to the closest existing memories above a cosine threshold.

Concurrency: reads run in threads and share the indexes' read locks; every
mutation takes one asyncio lock (a single writer), so the secretary, ingestion
and deletes never interleave. SQL rows are the truth; the indexes are caches.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from opentelemetry import trace
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server import native
from server.aio import TaskOwner
from server.memory import importance as importance_mod
from server.memory import store
from server.memory.associations import AssociationGraph
from server.memory.channels import Channel, build_channels
from server.memory.config import MemoryConfig
from server.memory.embedder import Embedder
from server.memory.errors import Conflict, InvalidInput, NotFound
from server.memory.lexical import LexicalIndex
from server.memory.models import ACTIVE, REQUESTED, MemoryRow, RelationRow, TurnRow, utcnow
from server.memory.rerank import Scores, combine, recency
from server.memory.schema import upgrade_to_head
from server.memory.scoring import ScoringCache
from server.storage.db import Database
from server.text.language import mostly_cjk

log = logging.getLogger(__name__)
tracer = trace.get_tracer("peromesh.memory")

MAX_TAGS = 32
MAX_TAG_CHARS = 64
MAX_KIND_CHARS = 32
MAX_SPREAD_STEPS = 5
RECALL_REINFORCE = 0.05  # importance += 0.05·(1 − importance) per recall
TEMPORAL_WEIGHT = 0.3  # consecutive memories of a session: a weak association
CO_RECALL_TOP = 5  # the top results of one recall count as "recalled together"
FETCH_MARGIN = 5  # extra winners read from SQL in case the scoring cache is stale
CO_RECALL_PAIRS_MAX = 100_000
BACKFILL_BATCH = 256  # memories embedded per step when a channel catches up


@dataclass
class Recalled:
    row: store.MemoryRecord
    scores: Scores
    previous: tuple[int, str, datetime] | None
    next: tuple[int, str, datetime] | None


@dataclass
class Timings:
    embed_ms: float = 0.0
    vector_ms: float = 0.0
    lexical_ms: float = 0.0
    spread_ms: float = 0.0
    fetch_ms: float = 0.0
    rerank_ms: float = 0.0
    total_ms: float = 0.0


@dataclass
class MemoryView:
    row: MemoryRow
    merged_from: list[int] = field(default_factory=list)


@dataclass
class Stats:
    counts: store.Counts
    indexed: int
    model: str
    dim: int
    index_saved_at: float | None
    native: bool
    consolidated_at: datetime | None
    lexical_terms: int


class MemoryEngine:
    def __init__(self, config: MemoryConfig, db: Database,
                 embedders: dict[str, Embedder] | None = None) -> None:
        self.config = config
        self.db = db
        self.cleaner = native.TextCleaner(list(config.sensitive_words))
        self.channels = build_channels(config.embedder, config.index_dir, config.index_dtype, db.sessions,
                                       embedders)
        self.primary = self.channels[0]
        self.lexical = LexicalIndex()
        self.scoring = ScoringCache()
        self.graph = AssociationGraph()
        self.write_lock = asyncio.Lock()
        self.co_recalled: Counter[tuple[int, int]] = Counter()
        self._tasks = TaskOwner("memory-engine")
        self._touches: set[asyncio.Task[None]] = set()  # access-count writes, finished (not cancelled) at close
        self._started = False
        self._backfill: asyncio.Task[None] | None = None
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Migrate the schema and load the lexical index and the graph (the HNSW index stays lazy)."""
        await asyncio.to_thread(upgrade_to_head, self.db.engine)
        await asyncio.to_thread(self._load_caches)
        self._backfill = self._tasks.spawn(self._backfill_channels(), "backfill")
        self._started = True

    async def backfilled(self) -> None:
        """Wait until every stored memory has a vector in every channel that stores it."""
        if self._backfill is not None:
            await asyncio.shield(self._backfill)

    async def _backfill_channels(self) -> None:
        """Embed memories stored before a channel indexed them (e.g. English facts, before the
        cross-language channel existed), a batch at a time, in the background: recall works
        meanwhile, and a Chinese question finds each English fact as soon as its batch lands."""
        for ch in self.channels:
            after, done = 0, 0
            while not self._closing and (rows := await self.db.run(lambda s, a=after, m=ch.model: store.without_vector(  # type: ignore[misc]
                    s, m, a, BACKFILL_BATCH))):
                after = rows[-1][0]
                todo = [(i, t) for i, t in rows if ch.stores(t)]
                if not todo:
                    continue
                vecs = await ch.embedder.embed([t for _, t in todo])
                async with self.write_lock:
                    live = await self.db.run(lambda s, t=todo, v=vecs, m=ch.model: _add_live_vectors(  # type: ignore[misc]
                        s, m, t, v))
                    if live:
                        await asyncio.to_thread(ch.index.add, np.asarray([i for i, _ in live], dtype=np.int64),
                                                np.stack([v for _, v in live]))
                done += len(live)
            if done:
                log.info("memory: %d stored memories embedded for the %s channel", done, ch.model)

    def _load_caches(self) -> None:
        with self.db.sessions() as s:
            self.lexical.add_many(store.texts(s))
        self.reload_scoring()
        self.reload_graph()

    def reload_scoring(self) -> None:
        """Refresh the scoring cache from SQL (after bulk changes such as the secretary's). Blocking."""
        with self.db.sessions() as s:
            self.scoring.load(store.scoring_rows(s))
        log.info("memory caches loaded: %d documents, %d relations", self.lexical.documents, self.graph.edges)

    async def warm_up(self) -> None:
        """Load every channel's embedding model (and run it once) and its HNSW index, then run one
        recall through the whole path; the server awaits this before it listens, so the first turn
        pays for none of it. The channels load side by side (each embedder has its own thread).
        A model that cannot load raises: a server without its embedder is not ready."""
        async def channel_ready(ch: Channel) -> None:
            await ch.embedder.warm_up()
            await asyncio.to_thread(ch.index.ensure_loaded)

        await asyncio.gather(*(channel_ready(ch) for ch in self.channels))
        await self.recall("warm up", None, peek=True)

    def reload_graph(self) -> None:
        """Rebuild the association graph from the relation table. Blocking."""
        with self.db.sessions() as s:
            max_id = s.scalar(select(func.max(MemoryRow.id))) or 0
            self.graph.load(store.all_edges(s), int(max_id))

    async def close(self) -> None:
        # The backfill stops between batches (cancelling it could strand a database call in
        # its worker thread past the engine's disposal).
        self._closing = True
        if self._backfill is not None:
            await asyncio.wait([self._backfill])
        if self._touches:
            await asyncio.wait(list(self._touches), timeout=5.0)
        await self._tasks.close()
        async with self.write_lock:
            await self.save_index()
        for ch in self.channels:
            await ch.embedder.close()

    async def save_index(self) -> bool:
        """Save every changed index (atomically); True if any was written."""
        saved = [await asyncio.to_thread(ch.index.save) for ch in self.channels]
        return any(saved)

    def channel_for(self, text: str) -> Channel:
        """The channel that embeds and stores `text`."""
        return next((ch for ch in self.channels if ch.stores(text)), self.primary)

    def channel_of_model(self, model: str) -> Channel | None:
        return next((ch for ch in self.channels if ch.model == model), None)

    def understood(self, query: str) -> list[Channel]:
        """Channels whose model understands `query` (searched for it)."""
        return [ch for ch in self.channels if ch.understands(query)]

    # -- validation --------------------------------------------------------------------------------

    def _clean(self, text: str, what: str, limit: int, required: bool = True) -> str:
        if len(text) > 4 * limit:
            raise InvalidInput(f"{what} is too long: {len(text)} characters (limit {limit})")
        cleaned = self.cleaner.clean(text).strip() if text else ""
        if required and not cleaned:
            raise InvalidInput(f"{what} is empty")
        if len(cleaned) > limit:
            raise InvalidInput(f"{what} is too long: {len(cleaned)} characters after cleaning (limit {limit})")
        return cleaned

    @staticmethod
    def _check_tags(tags: list[str]) -> list[str]:
        if len(tags) > MAX_TAGS:
            raise InvalidInput(f"too many tags: {len(tags)} (limit {MAX_TAGS})")
        for tag in tags:
            if not tag.strip() or len(tag) > MAX_TAG_CHARS:
                raise InvalidInput(f"tag {tag[:80]!r} is empty or longer than {MAX_TAG_CHARS} characters")
        return list(dict.fromkeys(t.strip() for t in tags))

    def check_vector(self, values: list[float] | np.ndarray) -> np.ndarray:
        vec = np.asarray(values, dtype=np.float32)
        dim = self.primary.embedder.dim
        if vec.ndim != 1 or len(vec) != dim:
            raise InvalidInput(f"query vector has dimension {vec.size}; this server uses {dim}")
        if not np.isfinite(vec).all():
            raise InvalidInput("query vector contains NaN or infinite values")
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            raise InvalidInput("query vector is all zeros")
        return vec / norm

    # -- ingestion ---------------------------------------------------------------------------------

    async def add_memory(self, text: str, occurred_at: datetime | None = None, tags: list[str] | None = None,
                         importance: float | None = None, session_id: str = "", source: str = "",
                         turn_id: str = "", reply: str = "") -> MemoryView:
        cleaned = self._clean(text, "text", self.config.max_text_chars)
        tags = self._check_tags(tags or [])
        if importance is not None and not (math.isfinite(importance) and 0.0 <= importance <= 1.0):
            raise InvalidInput(f"importance must be in [0, 1], got {importance}")
        if len(session_id) > 128 or len(source) > 32 or len(turn_id) > 128:
            raise InvalidInput("session_id/turn_id (128) or source (32) is too long")
        with tracer.start_as_current_span("memory.ingest") as span:
            span.set_attribute("memory.chars", len(cleaned))
            imp = importance_mod.score(cleaned) if importance is None else importance
            channel = self.channel_for(cleaned)
            with tracer.start_as_current_span("memory.embed"):
                placed = await self._embed_for_storing(cleaned)
            vec = placed[channel]
            more = {ch.model: v for ch, v in placed.items() if ch is not channel}
            new = store.NewMemory(text=cleaned, embedding=vec, model=channel.model, importance=imp,
                                  occurred_at=occurred_at or utcnow(), session_id=session_id,
                                  source=source or "user", tags=tags, turn_id=turn_id, reply=reply,
                                  more_vectors=more)
            async with self.write_lock:
                row = await self.db.run(lambda s: store.insert_memory(s, new))
                await asyncio.to_thread(self._index_new, row, placed)
                await self._link_new(channel, row, vec)
            span.set_attribute("memory.id", row.id)
            return MemoryView(row)

    def storing(self, text: str) -> list[Channel]:
        """Every channel that indexes `text`: its own, plus the cross-language one where configured."""
        return [ch for ch in self.channels if ch.stores(text)] or [self.primary]

    async def _embed_for_storing(self, text: str) -> dict[Channel, np.ndarray]:
        chans = self.storing(text)
        vecs = await asyncio.gather(*(ch.embedder.embed([text]) for ch in chans))
        return {ch: v[0] for ch, v in zip(chans, vecs, strict=True)}

    def _index_new(self, row: MemoryRow, placed: dict[Channel, np.ndarray]) -> None:
        for channel, vec in placed.items():
            channel.index.add(np.asarray([row.id], dtype=np.int64), vec[None, :])
        self.lexical.add(row.id, row.text)
        self.scoring.set(row.id, row.importance, row.occurred_at.timestamp())

    async def _link_new(self, channel: Channel, row: MemoryRow, vec: np.ndarray) -> None:
        """Temporal link to the session's previous memory; semantic links to the closest ones."""
        links: list[tuple[int, str, float]] = []
        if row.prev_id is not None and self.config.link_recent:
            links.append((row.prev_id, "temporal", TEMPORAL_WEIGHT))
        if self.config.link_similar and channel.understands(row.text):
            ids, sims = await asyncio.to_thread(channel.index.search, vec, self.config.link_similar + 1)
            links += [(int(i), "semantic", float(s)) for i, s in zip(ids, sims, strict=True)
                      if int(i) != row.id and s >= self.config.link_similar_min][: self.config.link_similar]
        for other, kind, weight in links:
            await self._add_relation(row.id, other, kind, weight)

    async def _add_relation(self, a: int, b: int, kind: str, weight: float) -> RelationRow:
        def work(s: Session) -> tuple[RelationRow, float]:
            rel = store.add_relation_weight(s, a, b, kind, weight)
            total = s.scalar(select(func.sum(RelationRow.weight)).where(
                RelationRow.a_id == rel.a_id, RelationRow.b_id == rel.b_id)) or 0.0
            return rel, min(1.0, float(total))

        rel, total = await self.db.run(work)
        self.graph.set_weight(rel.a_id, rel.b_id, total)
        return rel

    async def ingest_turn(self, session_id: str, turn_id: str, user_text: str, assistant_text: str,
                          occurred_at: datetime | None = None) -> tuple[MemoryView | None, bool]:
        """Log a finished turn and remember what the user said. Idempotent per (session, turn)."""
        if not session_id.strip() or not turn_id.strip():
            raise InvalidInput("session_id and turn_id are required")
        if len(session_id) > 128 or len(turn_id) > 128:
            raise InvalidInput("session_id and turn_id are limited to 128 characters")
        if not user_text.strip():
            raise InvalidInput("user_text is empty")
        # Text that cleans away to nothing (a pasted image, control characters) is logged, not remembered.
        user = self._clean(user_text, "user_text", self.config.max_text_chars, required=False)
        reply = self._clean(assistant_text, "assistant_text", self.config.max_reply_chars, required=False)
        when = occurred_at or utcnow()
        async with self.write_lock:
            existing = await self.db.run(lambda s: store.find_turn(s, session_id, turn_id))
            if existing is not None and (existing.memory_id is not None or not self._memorable(user)):
                mid = existing.memory_id
                view = None if mid is None else MemoryView(await self.db.run(lambda s: store.get_memory(s, mid)))
                return view, True
            if existing is None:
                await self.db.run(lambda s: s.add(TurnRow(session_id=session_id, turn_id=turn_id, user_text=user,
                                                          assistant_text=reply, occurred_at=when)))
        if not self._memorable(user):
            return None, False
        # A turn logged by an earlier attempt that died before its memory was made is completed here.
        view = await self.add_memory(user, when, [], None, session_id, "turn", turn_id, reply)

        def attach(s: Session) -> None:
            turn = store.find_turn(s, session_id, turn_id)
            if turn is not None:
                turn.memory_id = view.row.id

        await self.db.run(attach)
        return view, False

    @staticmethod
    def _memorable(text: str) -> bool:
        return bool(text) and importance_mod.worth_remembering(text)

    # -- retrieval ---------------------------------------------------------------------------------

    async def recall(self, text: str | None, vector: list[float] | None, top_k: int = 0,
                     spread_steps: int | None = None, half_life_s: float = 0.0, min_score: float = 0.0,
                     peek: bool = False) -> tuple[list[Recalled], Timings]:
        cfg = self.config
        top_k = top_k or cfg.default_top_k
        if not 1 <= top_k <= cfg.max_top_k:
            raise InvalidInput(f"top_k must be in [1, {cfg.max_top_k}], got {top_k}")
        steps = cfg.spread_steps if spread_steps is None else spread_steps
        if not 0 <= steps <= MAX_SPREAD_STEPS:
            raise InvalidInput(f"spread_steps must be in [0, {MAX_SPREAD_STEPS}], got {steps}")
        if half_life_s < 0 or not math.isfinite(half_life_s):
            raise InvalidInput("recency_half_life must not be negative")
        if not math.isfinite(min_score):
            raise InvalidInput("min_score must be finite")
        half_life = half_life_s or cfg.recency_half_life_s
        timings = Timings()
        started = time.perf_counter()
        with tracer.start_as_current_span("memory.recall") as span:
            query: str | None = None
            qvecs: list[tuple[Channel, np.ndarray]] = []
            if text is not None:
                query = self._clean(text, "query text", cfg.max_text_chars)
                t0 = time.perf_counter()
                with tracer.start_as_current_span("memory.embed"):
                    chans = [ch for ch in self.understood(query)
                             if ch is self.primary or len(ch.index) or not ch.index.loaded]
                    vecs = await asyncio.gather(*(ch.embedder.embed([query]) for ch in chans))
                    qvecs = [(ch, v[0]) for ch, v in zip(chans, vecs, strict=True)]
                timings.embed_ms = (time.perf_counter() - t0) * 1000
            elif vector is not None:
                qvecs.append((self.primary, self.check_vector(vector)))
            else:
                raise InvalidInput("a query text or vector is required")
            results = await asyncio.to_thread(self._recall_sync, query, qvecs, top_k, steps, half_life,
                                              min_score, timings)
            timings.total_ms = (time.perf_counter() - started) * 1000
            span.set_attribute("memory.results", len(results))
            span.set_attribute("memory.total_ms", timings.total_ms)
        if not peek and results:
            ids = [r.row.id for r in results]
            self._note_co_recall(ids[:CO_RECALL_TOP])
            task = self._tasks.spawn(self._touch(ids), "touch")
            self._touches.add(task)
            task.add_done_callback(self._touches.discard)
        return results, timings

    def _recall_sync(self, query: str | None, qvecs: list[tuple[Channel, np.ndarray]], top_k: int,
                     steps: int, half_life: float, min_score: float, timings: Timings) -> list[Recalled]:
        """The blocking part of recall (one worker thread); the stage spans nest under memory.recall."""
        cfg = self.config
        w = cfg.weights if qvecs and (query is None or self.understood(query)) else cfg.cjk_weights
        t = time.perf_counter()
        semantic: dict[int, float] = {}
        with tracer.start_as_current_span("memory.vector"):
            for ch, qvec in qvecs:  # a memory indexed by two channels keeps its better score
                ids, sims = ch.index.search(qvec, max(cfg.vector_candidates, top_k * 2))
                for i, sim in zip(ids.tolist(), sims.tolist(), strict=True):
                    semantic[i] = max(semantic.get(i, -1.0), sim * self._hit_factor(ch, query, i))
        timings.vector_ms = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        lexical: dict[int, float] = {}
        if query is not None:
            with tracer.start_as_current_span("memory.lexical"):
                lexical = dict(self.lexical.search(query, max(cfg.lexical_candidates, top_k * 2)))
        timings.lexical_ms = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        seeds = {i: w.semantic * max(0.0, semantic.get(i, 0.0)) + w.lexical * lexical.get(i, 0.0)
                 for i in semantic.keys() | lexical.keys()}
        floor = cfg.seed_fraction * max(seeds.values(), default=0.0)
        strongest = sorted(seeds.items(), key=lambda kv: -kv[1])[: cfg.max_seeds]
        seeds = {i: e for i, e in strongest if e > 0 and e >= floor}
        with tracer.start_as_current_span("memory.spread"):
            energy = self.graph.spread(seeds, steps, cfg.spread_decay, cfg.spread_threshold,
                                       cfg.spread_max_active, cfg.spread_max_fanout, cfg.spread_energy_cap,
                                       top_k=max(4 * top_k, 64)) if steps else {}
        timings.spread_ms = (time.perf_counter() - t) * 1000

        candidates = semantic.keys() | lexical.keys() | set(
            sorted(energy, key=energy.__getitem__, reverse=True)[: 2 * top_k])
        missing_sem = [i for i in candidates if i not in semantic]
        for ch, qvec in qvecs:
            if missing_sem:
                semantic.update((i, v * self._hit_factor(ch, query, i))
                                for i, v in ch.index.similarities(qvec, missing_sem).items())
                missing_sem = [i for i in missing_sem if i not in semantic]
        if query is not None:
            missing_lex = [i for i in candidates if i not in lexical]
            if missing_lex:
                lexical.update(self.lexical.score(query, missing_lex))

        t = time.perf_counter()
        # Candidates are ranked from the in-memory scoring cache; only the winners' rows
        # (without the embedding blob) and their neighbours' texts are read from SQL.
        with self.db.sessions() as s:
            facts = self.scoring.lookup(list(candidates))

            t = time.perf_counter()
            with tracer.start_as_current_span("memory.rerank"):
                top_seed = max(seeds.values(), default=0.0)
                now = time.time()
                ranked: list[tuple[int, Scores]] = []
                for mid, (importance, occurred) in facts.items():
                    sc = Scores(
                        semantic=min(1.0, max(0.0, semantic.get(mid, 0.0))),
                        lexical=lexical.get(mid, 0.0),
                        associative=min(1.0, energy.get(mid, 0.0) / top_seed) if top_seed > 0 else 0.0,
                        recency=recency(now - occurred, half_life),
                        importance=importance,
                    )
                    sc.final = combine(sc, w)
                    if sc.final >= min_score:
                        ranked.append((mid, sc))
                ranked.sort(key=lambda r: (-r[1].final, -r[0]))
                ranked = ranked[: top_k + FETCH_MARGIN]
            timings.rerank_ms = (time.perf_counter() - t) * 1000

            t = time.perf_counter()
            with tracer.start_as_current_span("memory.fetch"):
                rows = store.active_records(s, [mid for mid, _ in ranked])
                winners = [mid for mid, _ in ranked if mid in rows][:top_k]
                neighbours = store.texts_of(s, [n for mid in winners for n in (rows[mid].prev_id, rows[mid].next_id)
                                                if n is not None])
            timings.fetch_ms = (time.perf_counter() - t) * 1000
        out: list[Recalled] = []
        for mid, sc in ranked:
            row = rows.get(mid)
            if row is None:  # inactive in SQL though the cache said active: skip
                continue
            if len(out) == top_k:
                break
            prev = None if row.prev_id not in neighbours else (row.prev_id, *neighbours[row.prev_id])
            nxt = None if row.next_id not in neighbours else (row.next_id, *neighbours[row.next_id])
            out.append(Recalled(row, sc, prev, nxt))
        return out

    def _hit_factor(self, channel: Channel, query: str | None, memory_id: int) -> float:
        """1, or `cross_lingual_factor` when the hit is in the other language than the query's.

        Cross-lingual cosine runs high, so a same-language fact should win a near tie. A
        memory's language is that of the dedicated channel indexing it (MiniLM: non-CJK);
        in the cross-language channel, a memory no dedicated channel holds is of the other
        language. A single-channel setting has no notion of language here: always 1.
        """
        if query is None:
            return 1.0
        query_cjk = mostly_cjk(query)
        if channel.stores_cjk is not None:
            return 1.0 if channel.stores_cjk == query_cjk else self.config.cross_lingual_factor
        dedicated = [ch for ch in self.channels if ch.stores_cjk is not None]
        if not dedicated:
            return 1.0
        memory_cjk = next((ch.stores_cjk for ch in dedicated if ch.index.contains(memory_id)),
                          not dedicated[0].stores_cjk)
        return 1.0 if memory_cjk == query_cjk else self.config.cross_lingual_factor

    def _note_co_recall(self, ids: list[int]) -> None:
        if len(self.co_recalled) >= CO_RECALL_PAIRS_MAX:
            return
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                self.co_recalled[(min(a, b), max(a, b))] += 1

    async def _touch(self, ids: list[int]) -> None:
        self.scoring.reinforce(ids, RECALL_REINFORCE)
        await self.db.run(lambda s: store.touch(s, ids, RECALL_REINFORCE))

    # -- direct access -----------------------------------------------------------------------------

    async def relate(self, a: int, b: int, weight: float, kind: str) -> RelationRow:
        kind = kind.strip() or "user"
        if a == b:
            raise InvalidInput("a memory cannot be related to itself")
        if not (math.isfinite(weight) and 0.0 < weight <= 1.0):
            raise InvalidInput(f"weight must be in (0, 1], got {weight}")
        if len(kind) > MAX_KIND_CHARS:
            raise InvalidInput(f"kind is longer than {MAX_KIND_CHARS} characters")
        if a <= 0 or b <= 0:
            raise NotFound(f"memory {min(a, b)} does not exist")
        async with self.write_lock:
            for mid in (a, b):
                row = await self.db.run(lambda s, mid=mid: store.get_memory(s, mid))  # type: ignore[misc]
                if row.delete_reason != ACTIVE:
                    raise Conflict(f"memory {mid} is deleted; restore it first")
            return await self._add_relation(a, b, kind, weight)

    async def get(self, memory_id: int) -> tuple[MemoryView, list[RelationRow]]:
        def work(s: Session) -> tuple[MemoryView, list[RelationRow]]:
            row = store.get_memory(s, memory_id)
            return MemoryView(row, store.merged_from(s, memory_id)), store.relations_of(s, memory_id)

        return await self.db.run(work)

    async def delete(self, memory_id: int, erase: bool = False) -> bool:
        async with self.write_lock:
            neighbours = [r.b_id if r.a_id == memory_id else r.a_id
                          for r in await self.db.run(lambda s: store.relations_of(s, memory_id, 10_000))]
            if erase:
                await self.db.run(lambda s: store.erase(s, memory_id))
                changed = True
            else:
                changed = await self.db.run(lambda s: store.soft_delete(s, memory_id, REQUESTED))
            await asyncio.to_thread(self._unindex, [memory_id])
            if erase:
                self.graph.remove_node(memory_id, neighbours)
            return changed

    def _unindex(self, ids: list[int]) -> None:
        self.scoring.deactivate(ids)
        for ch in self.channels:
            ch.index.remove(ids)
        for mid in ids:
            self.lexical.remove(mid)

    async def restore(self, memory_id: int) -> MemoryView:
        async with self.write_lock:
            row = await self.db.run(lambda s: store.restore(s, memory_id))
            vec = np.frombuffer(row.embedding, dtype="<f4")
            channel = self.channel_of_model(row.embedding_model)
            if channel is None or len(vec) != channel.embedder.dim:  # stored under a model not configured now
                placed = await self._embed_for_storing(row.text)
                own = self.channel_for(row.text)
                await self.db.run(lambda s: _set_embedding(s, memory_id, placed[own], own.model))
            else:  # its own vector is on the row; the further channels' are embedded again (cheap, rare)
                own = channel
                placed = {ch: v for ch, v in (await self._embed_for_storing(row.text)).items() if ch is not own}
                placed[own] = vec
            more = {ch.model: v for ch, v in placed.items() if ch is not own}
            await self.db.run(lambda s: store.add_vectors(s, memory_id, more))
            await asyncio.to_thread(self._index_new, row, placed)
            return MemoryView(row)

    async def stats(self) -> Stats:
        for ch in self.channels:
            await asyncio.to_thread(ch.index.ensure_loaded)
        counts = await self.db.run(store.counts)
        consolidated = await self.db.run(lambda s: store.get_state(s, "consolidated_at"))
        saved = [ch.index.saved_at for ch in self.channels if ch.index.saved_at is not None]
        return Stats(counts, sum(len(ch.index) for ch in self.channels),
                     "+".join(ch.model for ch in self.channels), self.primary.embedder.dim,
                     min(saved) if saved else None,
                     native.BACKEND == "native", datetime.fromisoformat(consolidated) if consolidated else None,
                     self.lexical.term_count)


def _add_live_vectors(s: Session, model: str, todo: list[tuple[int, str]],
                      vecs: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Store `model` vectors for the memories of `todo` that are still active; returns those."""
    active = store.active_records(s, [i for i, _ in todo])
    live = [(i, v) for (i, _), v in zip(todo, vecs, strict=True) if i in active]
    for i, v in live:
        store.add_vectors(s, i, {model: v})
    return live


def _set_embedding(s: Session, memory_id: int, vec: np.ndarray, model: str) -> None:
    row = store.get_memory(s, memory_id)
    row.embedding = np.asarray(vec, dtype="<f4").tobytes()
    row.embedding_model = model
