"""Recall at scale: the engine's retrieval path over N memories (issue 4).

The memories are SYNTHETIC: 384-d unit vectors drawn around 2,000 random
cluster centres (so neighbourhoods exist, as with real sentences), a short
synthetic text each, and random relations (3 per memory on average, weights in
[0.1, 1)). They are written straight into the SQL tables (SQLite in WAL by
default, or --db-url), then the server's own code takes over:

  build   — the HNSW index rebuilt from the embeddings stored in SQL (usearch,
            f16, M=16), and the start-up caches (BM25 over the texts, the
            association graph from the relation table);
  recall  — `MemoryEngine.recall` with a query VECTOR (embedding excluded):
            usearch top-20 → spreading activation (2 steps) → fetch rows with
            prev/next context from SQL → rerank; top 20 returned.

Prints JSON lines: the build phase (seconds, RSS), then recall latency
(p50/p90/p99/max ms over --queries recalls, after --warmup). The goal in the
issue is ≤ 10 ms p99 at 1,000,000 memories.

    .venv/bin/python benchmarks/recall.py                  # 1,000,000 memories (minutes, ~4 GB disk)
    .venv/bin/python benchmarks/recall.py --count 200000   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psutil
from sqlalchemy import insert

from server import native
from server.memory.config import MemoryConfig
from server.memory.embedder import MiniLmEmbedder
from server.memory.engine import MemoryEngine
from server.memory.models import MemoryRow, RelationRow
from server.memory.schema import upgrade_to_head
from server.storage.db import Database

DIM = 384
CHUNK = 20_000
WORDS = ("garden", "cat", "dentist", "birthday", "flight", "coffee", "piano", "school", "rain", "marathon",
         "office", "doctor", "bread", "movie", "river", "winter", "train", "book", "phone", "market")


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def synth_vectors(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    pick = rng.integers(0, len(centres), n)
    v = centres[pick] + 0.35 * rng.standard_normal((n, DIM)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def populate(db: Database, count: int, relations: int, seed: int, model: str) -> np.ndarray:
    """Write `count` memories and `relations` relations; returns the cluster centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, DIM)).astype(np.float32)
    now = datetime.now(UTC)
    with db.engine.begin() as conn:
        for start in range(0, count, CHUNK):
            n = min(CHUNK, count - start)
            vecs = synth_vectors(rng, centres, n)
            ages = rng.uniform(0, 365, n)
            words = rng.integers(0, len(WORDS), (n, 3))
            rows = []
            for i in range(n):
                mid = start + i + 1
                when = now - timedelta(days=float(ages[i]))
                session = f"s{mid // 20}"
                rows.append({
                    "id": mid, "text": f"note {mid}: {WORDS[words[i, 0]]} {WORDS[words[i, 1]]} {WORDS[words[i, 2]]}",
                    "reply": "", "session_id": session, "turn_id": "", "source": "bench", "tags": [],
                    "importance": float(rng.uniform(0.1, 0.9)), "occurred_at": when, "created_at": when,
                    "decayed_at": when, "access_count": 0, "delete_reason": 0,
                    "prev_id": mid - 1 if mid % 20 and mid > 1 else None,
                    "next_id": mid + 1 if (mid + 1) % 20 and mid < count else None,
                    "embedding": vecs[i].astype("<f4").tobytes(), "embedding_model": model,
                })
            conn.execute(insert(MemoryRow), rows)
        rel_rng = np.random.default_rng(seed + 1)
        seen: set[int] = set()
        done = 0
        while done < relations:
            n = min(CHUNK * 5, relations - done)
            a = rel_rng.integers(1, count + 1, n)
            b = rel_rng.integers(1, count + 1, n)
            w = rel_rng.uniform(0.1, 1.0, n)
            pairs: dict[tuple[int, int], float] = {}
            for x, y, z in zip(a.tolist(), b.tolist(), w.tolist(), strict=True):
                key = min(x, y) * (count + 1) + max(x, y)
                if x != y and key not in seen:
                    seen.add(key)
                    pairs[(min(x, y), max(x, y))] = float(z)
            conn.execute(insert(RelationRow), [
                {"a_id": x, "b_id": y, "kind": "bench", "weight": z, "created_at": now, "updated_at": now}
                for (x, y), z in pairs.items()])
            done += n
    return centres


async def run(args: argparse.Namespace, work: Path) -> None:
    url = args.db_url or f"sqlite:///{work / 'memory.db'}"
    config = MemoryConfig(data_dir=work, db_url=url, embedder="minilm", secretary_interval_s=0,
                          index_save_interval_s=0, vector_candidates=args.top_k, spread_steps=args.steps)
    db = Database(url)
    upgrade_to_head(db.engine)
    model = MiniLmEmbedder.name
    t = time.perf_counter()
    if args.reuse:  # same seed: the same centres, so queries land in the same neighbourhoods
        centres = np.random.default_rng(args.seed).standard_normal((2000, DIM)).astype(np.float32)
    else:
        centres = populate(db, args.count, args.count * args.relations, args.seed, model)
        emit(phase="populate", memories=args.count, relations_requested=args.count * args.relations,
             seconds=round(time.perf_counter() - t, 1), note="synthetic 384-d vectors, written straight to SQL")

    # The model is never called (vector queries): the engine only needs its name and dimension.
    engine = MemoryEngine(config, db, {"minilm": MiniLmEmbedder()})
    rss0 = rss_mb()
    t = time.perf_counter()
    await engine.start()  # migrate (no-op), BM25 over the texts, association graph
    caches_s = time.perf_counter() - t
    rss1 = rss_mb()
    t = time.perf_counter()
    await asyncio.to_thread(engine.primary.index.ensure_loaded)  # rebuilt from SQL unless --reuse
    build_s = time.perf_counter() - t
    rss2 = rss_mb()
    t = time.perf_counter()
    await engine.save_index()
    save_s = time.perf_counter() - t
    emit(phase="load" if args.reuse else "build", hnsw_rebuilt=engine.primary.index.rebuilt,
         memories=len(engine.primary.index), graph_edges=engine.graph.edges,
         caches_s=round(caches_s, 1), hnsw_build_s=round(build_s, 1), hnsw_save_s=round(save_s, 1),
         rss_mb_before=round(rss0), rss_mb_after_caches=round(rss1), rss_mb_after_hnsw=round(rss2),
         peak_rss_mb=round(peak_rss_mb()), spread_backend=native.BACKEND, threads=psutil.cpu_count())

    rng = np.random.default_rng(args.seed + 2)
    queries = synth_vectors(rng, centres, args.warmup + args.queries)
    for q in queries[: args.warmup]:
        await engine.recall(None, q.tolist(), top_k=args.top_k, spread_steps=args.steps, peek=True)
    lat: list[float] = []
    stages: dict[str, list[float]] = {k: [] for k in ("vector_ms", "spread_ms", "fetch_ms", "rerank_ms")}
    results = 0
    for q in queries[args.warmup :]:
        t = time.perf_counter()
        found, timings = await engine.recall(None, q.tolist(), top_k=args.top_k, spread_steps=args.steps,
                                             peek=True)
        lat.append((time.perf_counter() - t) * 1000)
        results += len(found)
        for k in stages:
            stages[k].append(getattr(timings, k))
    lat.sort()

    def pct(values: list[float], p: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2)

    emit(phase="recall", memories=args.count, queries=len(lat), top_k=args.top_k, spread_steps=args.steps,
         p50_ms=pct(lat, 0.5), p90_ms=pct(lat, 0.9), p99_ms=pct(lat, 0.99), max_ms=round(lat[-1], 2),
         mean_ms=round(statistics.fmean(lat), 2), mean_results=round(results / len(lat), 1),
         stage_p50_ms={k: pct(v, 0.5) for k, v in stages.items()},
         stage_p99_ms={k: pct(v, 0.99) for k, v in stages.items()},
         note="query vectors given (embedding excluded); includes asyncio→thread hop and SQL fetch")
    await engine.close()
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="memories (default 1,000,000)")
    parser.add_argument("--relations", type=int, default=3, help="relations per memory")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", default=None, help="work folder (default: a new temp folder)")
    parser.add_argument("--db-url", default=None, help="SQLAlchemy URL (default: SQLite in the work folder)")
    parser.add_argument("--reuse", action="store_true",
                        help="use the memories (and saved index) already in --dir from an earlier run")
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="recall-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    asyncio.run(run(args, work))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
