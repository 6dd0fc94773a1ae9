"""The engine end to end on SQLite and PostgreSQL with the real embedding models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from server.memory import store
from server.memory.embedder import Embedder
from server.memory.engine import MemoryEngine
from server.memory.errors import Conflict, InvalidInput, NotFound
from server.memory.models import REQUESTED, TurnRow, utcnow
from server.memory.server import open_engine
from tests.memory.conftest import make_config


async def test_schema_is_migrated_with_alembic(engine: MemoryEngine) -> None:
    tables = set(inspect(engine.db.engine).get_table_names())
    assert {"memory_items", "memory_relations", "memory_turns", "memory_state",
            "memory_alembic_version"} <= tables


async def test_add_recall_with_context_and_score_breakdown(engine: MemoryEngine,
                                                           spans: InMemorySpanExporter) -> None:
    first = await engine.add_memory("We adopted a grey cat called Mochi last spring.", session_id="s1")
    second = await engine.add_memory("Mochi hates the vacuum cleaner and hides under the bed.", session_id="s1")
    third = await engine.add_memory("I am learning to play the cello on weekends.", session_id="s1")
    await engine.add_memory("我最喜欢的颜色是淡紫色。", session_id="s2", tags=["偏好"])
    assert (first.row.prev_id, second.row.prev_id, third.row.prev_id) == (None, first.row.id, second.row.id)

    results, timings = await engine.recall("what is the name of our kitty?", None, top_k=3)
    top = results[0]
    assert top.row.id == first.row.id
    assert top.previous is None and top.next is not None and top.next[0] == second.row.id
    s = top.scores
    assert 0 < s.semantic <= 1 and 0 < s.recency <= 1 and 0 < s.importance <= 1 and s.final > 0
    assert timings.total_ms >= timings.vector_ms > 0
    names = {sp.name for sp in spans.get_finished_spans()}
    assert {"memory.recall", "memory.embed", "memory.vector", "memory.lexical", "memory.spread",
            "memory.fetch", "memory.rerank"} <= names

    zh, _ = await engine.recall("我偏爱哪种颜色？", None, top_k=2)
    assert zh[0].row.text == "我最喜欢的颜色是淡紫色。" and zh[0].row.tags == ["偏好"]


async def test_spreading_activation_surfaces_related_memories(engine: MemoryEngine) -> None:
    cat = await engine.add_memory("We adopted a grey cat called Mochi last spring.")
    vet = await engine.add_memory("The appointment at Dr. Huang's clinic is on Friday at 10.")
    for i in range(6):
        await engine.add_memory(f"Unrelated note number {i} about the garden fence paint.")
    await engine.relate(cat.row.id, vet.row.id, 1.0, "topic")
    with_spread, _ = await engine.recall("tell me about our kitty", None, top_k=3, spread_steps=2, peek=True)
    by_id = {r.row.id: r for r in with_spread}
    assert vet.row.id in by_id and by_id[vet.row.id].scores.associative > 0.3
    without, _ = await engine.recall("tell me about our kitty", None, top_k=3, spread_steps=0, peek=True)
    assert all(r.scores.associative == 0 for r in without)


async def test_recency_decay_prefers_the_fresh_memory_on_a_close_call(engine: MemoryEngine) -> None:
    old = await engine.add_memory("My dentist appointment is on Monday.",
                                  occurred_at=datetime.now(UTC) - timedelta(days=400))
    new = await engine.add_memory("My dentist appointment is on Monday!")
    results, _ = await engine.recall("when do I see the dentist", None, top_k=2, half_life_s=7 * 86400)
    assert [r.row.id for r in results] == [new.row.id, old.row.id]
    assert results[1].scores.recency < 0.01 < results[0].scores.recency


async def test_vector_queries_and_their_validation(engine: MemoryEngine) -> None:
    mem = await engine.add_memory("I drive an old blue Honda Civic from 2009.")
    vec = (await engine.primary.embedder.embed(["which car do I own"]))[0]
    results, _ = await engine.recall(None, vec.tolist(), top_k=1)
    assert results[0].row.id == mem.row.id and results[0].scores.lexical == 0
    with pytest.raises(InvalidInput, match="dimension 3"):
        await engine.recall(None, [0.1, 0.2, 0.3])
    with pytest.raises(InvalidInput, match="NaN"):
        await engine.recall(None, [float("nan")] * engine.primary.embedder.dim)
    with pytest.raises(InvalidInput, match="zeros"):
        await engine.recall(None, [0.0] * engine.primary.embedder.dim)


async def test_bad_input_is_rejected_precisely(engine: MemoryEngine) -> None:
    for text in ("", "   ", "\x00\x01"):
        with pytest.raises(InvalidInput, match="empty"):
            await engine.add_memory(text)
    with pytest.raises(InvalidInput, match="too long"):
        await engine.add_memory("x" * 8001)
    with pytest.raises(InvalidInput, match="importance"):
        await engine.add_memory("fine text", importance=1.5)
    with pytest.raises(InvalidInput, match="tags"):
        await engine.add_memory("fine text", tags=["t"] * 33)
    with pytest.raises(InvalidInput, match="top_k"):
        await engine.recall("anything", None, top_k=101)
    with pytest.raises(InvalidInput, match="spread_steps"):
        await engine.recall("anything", None, spread_steps=9)
    with pytest.raises(InvalidInput, match="required"):
        await engine.recall(None, None)
    with pytest.raises(NotFound):
        await engine.get(424242)
    with pytest.raises(NotFound):
        await engine.delete(424242)
    with pytest.raises(NotFound):
        await engine.restore(424242)
    a = await engine.add_memory("one")
    with pytest.raises(NotFound):
        await engine.relate(a.row.id, 424242, 0.5, "")
    with pytest.raises(InvalidInput, match="itself"):
        await engine.relate(a.row.id, a.row.id, 0.5, "")
    with pytest.raises(InvalidInput, match="weight"):
        await engine.relate(a.row.id, a.row.id + 1, float("nan"), "")
    b = await engine.add_memory("two")
    await engine.delete(b.row.id)
    with pytest.raises(Conflict, match="restore"):
        await engine.relate(a.row.id, b.row.id, 0.5, "")


async def test_sensitive_words_and_blobs_are_cleaned_before_storing(data_dir: Path, db_url: str,
                                                                     embedders: dict[str, Embedder]) -> None:
    eng, db = await open_engine(make_config(data_dir, db_url, sensitive_words=("hunter2",)), embedders)
    try:
        blob = "data:image/png;base64," + "A" * 200
        mem = await eng.add_memory(f"My   password is hunter2\x07 and here is a picture {blob}")
        assert "hunter2" not in mem.row.text and "AAAA" not in mem.row.text and "\x07" not in mem.row.text
        assert "  " not in mem.row.text and "*******" in mem.row.text
    finally:
        await eng.close()
        db.dispose()


async def test_ingest_turn_is_logged_idempotent_and_skips_small_talk(engine: MemoryEngine) -> None:
    view, dup = await engine.ingest_turn("s9", "t1", "记住，我下周三要去看牙医", "好的，我记住了。")
    assert view is not None and not dup and view.row.source == "turn" and view.row.reply == "好的，我记住了。"
    assert view.row.importance > 0.5  # a request to remember, with a date
    again, dup = await engine.ingest_turn("s9", "t1", "记住，我下周三要去看牙医", "好的")
    assert dup and again is not None and again.row.id == view.row.id
    nothing, dup = await engine.ingest_turn("s9", "t2", "嗯嗯", "还有什么吗？")
    assert nothing is None and not dup
    picture, dup = await engine.ingest_turn("s9", "t3", "data:image/png;base64," + "iVBO" * 40, "Nice picture!")
    assert picture is None and not dup  # cleaned away to nothing: logged, not remembered
    stats = await engine.stats()
    assert stats.counts.turns == 3 and stats.counts.active == 1
    with pytest.raises(InvalidInput):
        await engine.ingest_turn("", "t4", "hello there friend", "")
    with pytest.raises(InvalidInput):
        await engine.ingest_turn("s9", "t4", "   ", "")


async def test_delete_is_soft_and_recoverable_erase_is_final(engine: MemoryEngine) -> None:
    a = await engine.add_memory("My blood type is O negative.", session_id="s")
    b = await engine.add_memory("I collect vintage postcards from flea markets.", session_id="s")
    c = await engine.add_memory("I named my sourdough starter Bubbles.", session_id="s")
    assert await engine.delete(a.row.id) and not await engine.delete(a.row.id)
    hits, _ = await engine.recall("what is my blood group", None, top_k=3)
    assert a.row.id not in [r.row.id for r in hits]
    view, _ = await engine.get(a.row.id)
    assert view.row.delete_reason == REQUESTED
    await engine.restore(a.row.id)
    hits, _ = await engine.recall("what is my blood group", None, top_k=1)
    assert hits[0].row.id == a.row.id

    assert await engine.delete(b.row.id, erase=True)
    with pytest.raises(NotFound):
        await engine.get(b.row.id)
    first, _ = await engine.get(a.row.id)
    last, _ = await engine.get(c.row.id)
    assert first.row.next_id == c.row.id and last.row.prev_id == a.row.id  # chain spliced


async def test_recall_counts_access_and_indexes_survive_restart(data_dir: Path, db_url: str,
                                                               embedders: dict[str, Embedder]) -> None:
    config = make_config(data_dir, db_url)
    eng, db = await open_engine(config, embedders)
    mem = await eng.add_memory("My flight to Reykjavik leaves on July 3rd.")
    zh = await eng.add_memory("我飞昆明的航班是七月三号。")
    await eng.recall("when do I fly to Iceland", None, top_k=1)
    await eng.close()  # saves the indexes
    db.dispose()

    eng, db = await open_engine(config, embedders)
    try:
        view, _ = await eng.get(mem.row.id)
        assert view.row.access_count == 1 and view.row.last_accessed_at is not None
        hits, _ = await eng.recall("when do I fly to Iceland", None, top_k=1)
        assert hits[0].row.id == mem.row.id
        assert all(not ch.index.rebuilt for ch in eng.channels)  # loaded from the saved files
        hits, _ = await eng.recall("我哪天坐飞机去云南？", None, top_k=1)
        assert hits[0].row.id == zh.row.id
    finally:
        await eng.close()
        db.dispose()


async def test_stats(engine: MemoryEngine) -> None:
    await engine.add_memory("I prefer tea over coffee.")
    await engine.add_memory("我喜欢喝绿茶。")
    stats = await engine.stats()
    # Three vectors: the English memory is in MiniLM and in the cross-language channel.
    assert stats.counts.active == 2 and stats.indexed == 3 and stats.dim == 384
    assert stats.model == "all-MiniLM-L6-v2+universal-sentence-encoder-multilingual-3"
    assert stats.lexical_terms > 0


async def test_a_stale_scoring_cache_never_returns_an_inactive_memory(engine: MemoryEngine) -> None:
    gone = await engine.add_memory("My blood type is O negative.")
    kept = await engine.add_memory("My blood pressure is usually fine.")
    # Another process (or a bug) deactivates the row behind the engine's back: caches stay stale.
    await engine.db.run(lambda s: store.soft_delete(s, gone.row.id, REQUESTED))
    assert engine.scoring.lookup([gone.row.id])  # still active in the cache
    hits, _ = await engine.recall("what is my blood type", None, top_k=2, peek=True)
    assert [h.row.id for h in hits] == [kept.row.id]


async def test_a_turn_logged_without_its_memory_is_completed_on_retry(engine: MemoryEngine) -> None:
    # A crash after logging the turn but before making its memory leaves exactly this row behind.
    await engine.db.run(lambda s: s.add(TurnRow(session_id="s5", turn_id="t1", user_text="I'm vegetarian since 2018.",
                                                assistant_text="", occurred_at=utcnow())))
    view, dup = await engine.ingest_turn("s5", "t1", "I'm vegetarian since 2018.", "Noted!")
    assert view is not None and not dup
    again, dup = await engine.ingest_turn("s5", "t1", "I'm vegetarian since 2018.", "Noted!")
    assert dup and again is not None and again.row.id == view.row.id
    assert (await engine.stats()).counts.turns == 1


async def test_memories_stored_before_the_cross_language_channel_are_embedded_for_it(
        data_dir: Path, db_url: str, embedders: dict[str, Embedder]) -> None:
    """A store written when English facts lived only in MiniLM's space (no use-m3 vector):
    on open, the engine embeds them for the cross-language channel in the background, and a
    Chinese question then finds the English fact; a deleted memory is not brought back."""
    config = make_config(data_dir, db_url)
    eng, db = await open_engine(config, embedders)
    fact, gone = "My sister Clara lives in Lyon with her two kids.", "My old car was a red Fiat."
    vecs = embedders["minilm"].encode([fact, gone])

    def old_style(s: Session) -> list[int]:  # as the previous version stored them: one vector each
        return [store.insert_memory(s, store.NewMemory(text=t, embedding=v, model=eng.primary.model,
                                                       importance=0.5, occurred_at=utcnow())).id
                for t, v in zip((fact, gone), vecs, strict=True)]

    fact_id, gone_id = await eng.db.run(old_style)
    await eng.db.run(lambda s: store.soft_delete(s, gone_id, REQUESTED))
    await eng.close()
    db.dispose()

    eng, db = await open_engine(config, embedders)
    try:
        await eng.backfilled()
        cross = eng.channel_of_model("universal-sentence-encoder-multilingual-3")
        assert cross is not None and cross.index.contains(fact_id) and not cross.index.contains(gone_id)
        hits, _ = await eng.recall("我姐姐住在哪个城市？", None, top_k=3)
        assert hits and hits[0].row.id == fact_id
    finally:
        await eng.close()
        db.dispose()
