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

`--fixture` measures the prompt path instead, with the real models: the 200
facts of tests/memory/data in one store (as test_recall_quality.py), then every
question through a real memory server and `MemoryClient.recall_relevant` (what
`recall_context` puts into a prompt): English and Chinese paraphrases, questions
in the other language than their fact, and queries with no relevant fact
(recall_none.tsv: greetings, small talk, general knowledge). One JSON line per
`--min-semantic` floor (0: no floor, as before the floor existed): hit@5 per
set, memories injected per query (relevant sets vs no-relevant-fact set),
recall latency p50/p99 over gRPC loopback, query embedding included (one
pass, peek: the floor is the client's filter, so every floor is applied to the
same hits and the server's work does not depend on it).

    .venv/bin/python benchmarks/recall.py                  # 1,000,000 memories (minutes, ~4 GB disk)
    .venv/bin/python benchmarks/recall.py --count 200000   # quicker
    .venv/bin/python benchmarks/recall.py --fixture        # the prompt path's floor: before/after
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

from peromesh.memory.v1 import memory_service_pb2 as pb
from server import native
from server.memory.client import MemoryClient
from server.memory.config import MemoryConfig
from server.memory.embedder import MiniLmEmbedder
from server.memory.engine import MemoryEngine
from server.memory.models import MemoryRow, RelationRow
from server.memory.rerank import PROMPT_MIN_SEMANTIC, relevant
from server.memory.schema import upgrade_to_head
from server.memory.server import MemoryServer, start_memory_server
from server.storage.db import Database
from server.warmup import settle_heap
from tests.memory.conftest import load_fixture

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
    out: np.ndarray = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return out


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
    emit(phase="recall", memories=args.count, queries=len(lat), top_k=args.top_k, spread_steps=args.steps,
         p50_ms=pct(lat, 0.5), p90_ms=pct(lat, 0.9), p99_ms=pct(lat, 0.99), max_ms=round(lat[-1], 2),
         mean_ms=round(statistics.fmean(lat), 2), mean_results=round(results / len(lat), 1),
         stage_p50_ms={k: pct(v, 0.5) for k, v in stages.items()},
         stage_p99_ms={k: pct(v, 0.99) for k, v in stages.items()},
         note="query vectors given (embedding excluded); includes asyncio→thread hop and SQL fetch")
    await engine.close()
    db.dispose()


Questions = dict[str, list[tuple[int | None, str]]]  # set -> (id of the right fact or None, query)


async def load_facts(server: MemoryServer) -> Questions:
    """The 200 facts in one store (sessions as test_recall_quality.py), and the question sets."""
    facts = {lang: load_fixture(f"recall_{lang}.tsv") for lang in ("en", "zh")}
    ids: dict[str, int] = {}
    for lang, rows in facts.items():
        views = await asyncio.gather(*(server.engine.add_memory(fact, session_id=f"{lang}{i % 7}")
                                       for i, (fact, _) in enumerate(rows)))
        ids.update((v.row.text, v.row.id) for v in views)
    await server.engine.backfilled()
    sets: Questions = {name: [(ids[fact], q) for fact, q in load_fixture(f"recall_{name}.tsv")]
                       for name in ("en", "zh", "cross")}
    sets["none"] = [(None, q) for _, q in load_fixture("recall_none.tsv")]
    return sets


async def fixture_pass(client: MemoryClient, sets: Questions, top_k: int,
                       floors: list[float]) -> list[dict[str, object]]:
    """hit@top_k, memories injected per query and latency per set, for each floor.

    Each query is recalled once (peek: no reinforcement, so every floor sees the same
    store) and every floor applied to the same hits: the floor is the client's filter
    (`recall_relevant` is `relevant(recall(...))`), so the server's work, and the
    latency, are the same at any floor.
    """
    lat: list[float] = []
    answers: dict[str, list[tuple[int | None, list[pb.RecalledMemory]]]] = {}
    for name, rows in sets.items():
        answers[name] = []
        for want, query in rows:
            t = time.perf_counter()
            items = await client.recall(query, top_k, min_score=0.05, peek=True)
            lat.append((time.perf_counter() - t) * 1000)
            answers[name].append((want, items))
    timing = {"p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "recalls": len(lat)}
    return [{"min_semantic": floor, **score_floor(answers, floor), **timing} for floor in floors]


def score_floor(answers: dict[str, list[tuple[int | None, list[pb.RecalledMemory]]]],
                floor: float) -> dict[str, object]:
    hits: dict[str, float] = {}
    injected: dict[str, int] = {}
    empty: dict[str, int] = {}
    for name, rows in answers.items():
        kept = [(want, relevant(items, floor)) for want, items in rows]
        injected[name] = sum(len(items) for _, items in kept)
        empty[name] = sum(not items for _, items in kept)
        if name != "none":
            found = sum(want in [item.memory.id for item in items] for want, items in kept)
            hits[name] = round(100 * found / len(rows), 1)

    def per_query(names: list[str]) -> float:
        return round(sum(injected[n] for n in names) / sum(len(answers[n]) for n in names), 2)

    return {"hit_at_k_pct": hits,
            "injected_per_query": {"relevant": per_query(list(hits)), "no_relevant_fact": per_query(["none"]),
                                   "per_set": {n: per_query([n]) for n in answers}},
            "queries_without_memory": empty}


async def run_fixture(args: argparse.Namespace, work: Path) -> None:
    config = MemoryConfig(data_dir=work, db_url=args.db_url or f"sqlite:///{work / 'memory.db'}",
                          secretary_interval_s=0, index_save_interval_s=0)
    server = await start_memory_server(config, allow_unauthenticated_loopback=True)
    settle_heap()  # as `peromesh serve` does once every server is warm (the facts come after, as in use)
    client = MemoryClient.connect(server.address, recall_timeout_s=30.0)
    try:
        sets = await load_facts(server)
        for _, query in sets["none"][:5]:  # warm up the channel and the embedders' batching
            await client.recall(query, args.top_k)
        for result in await fixture_pass(client, sets, args.top_k, args.min_semantic):
            emit(phase="fixture", top_k=args.top_k, **result, queries={n: len(r) for n, r in sets.items()},
                 loadavg=[round(x, 2) for x in os.getloadavg()])
    finally:
        await client.close()
        await server.stop()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="memories (default 1,000,000)")
    parser.add_argument("--relations", type=int, default=3, help="relations per memory")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--top-k", type=int, default=None, help="default 20; 5 with --fixture (hit@5)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", default=None, help="work folder (default: a new temp folder)")
    parser.add_argument("--db-url", default=None, help="SQLAlchemy URL (default: SQLite in the work folder)")
    parser.add_argument("--reuse", action="store_true",
                        help="use the memories (and saved index) already in --dir from an earlier run")
    parser.add_argument("--fixture", action="store_true",
                        help="the prompt path on the 200-fact fixture with the real models (see above)")
    parser.add_argument("--min-semantic", type=float, nargs="+", default=[0.0, PROMPT_MIN_SEMANTIC],
                        help=f"--fixture: floors to compare (default 0 and the prompt's {PROMPT_MIN_SEMANTIC})")
    args = parser.parse_args()
    args.top_k = args.top_k or (5 if args.fixture else 20)
    work = Path(args.dir or tempfile.mkdtemp(prefix="recall-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    asyncio.run(run_fixture(args, work) if args.fixture else run(args, work))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
