"""The secretary: merge near-duplicates (with provenance), decay, forget (recoverably), strengthen."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import update

from server.memory.engine import MemoryEngine
from server.memory.models import ACTIVE, FORGOTTEN, MERGED, MemoryRow, utcnow
from server.memory.secretary import Secretary


async def _age(engine: MemoryEngine, memory_id: int, days: float, importance: float | None = None) -> None:
    """Pretend a memory was created and last decayed `days` ago."""
    then = utcnow() - timedelta(days=days)
    values: dict[str, object] = {"created_at": then, "decayed_at": then}
    if importance is not None:
        values["importance"] = importance
    await engine.db.run(lambda s: s.execute(update(MemoryRow).where(MemoryRow.id == memory_id).values(**values)))


async def test_near_duplicates_merge_keeping_provenance(engine: MemoryEngine) -> None:
    a = await engine.add_memory("I'm allergic to peanuts.", tags=["health"], importance=0.6)
    b = await engine.add_memory("I am allergic to peanuts!", tags=["food"], importance=0.4)
    c = await engine.add_memory("我对海鲜过敏，吃虾会起疹子。")
    d = await engine.add_memory("我对海鲜过敏，吃虾就起疹子。")
    other = await engine.add_memory("I'm allergic to cats.")  # similar, but a different fact
    zh_other = await engine.add_memory("我对花粉过敏。")
    await engine.relate(b.row.id, other.row.id, 0.7, "user")

    report = await Secretary(engine).run()
    assert report.merged == 2
    survivor, relations = await engine.get(a.row.id)
    assert survivor.row.delete_reason == ACTIVE and survivor.merged_from == [b.row.id]
    assert set(survivor.row.tags) == {"health", "food"}
    assert any({r.a_id, r.b_id} == {a.row.id, other.row.id} and r.kind == "user" for r in relations)
    merged, _ = await engine.get(b.row.id)
    assert merged.row.delete_reason == MERGED and merged.row.merged_into_id == a.row.id
    zh_keep, _ = await engine.get(c.row.id)
    assert zh_keep.merged_from == [d.row.id]
    for distinct in (other, zh_other):
        view, _ = await engine.get(distinct.row.id)
        assert view.row.delete_reason == ACTIVE

    hits, _ = await engine.recall("do I have a nut allergy", None, top_k=5, peek=True)
    assert b.row.id not in [h.row.id for h in hits] and hits[0].row.id == a.row.id

    again = await Secretary(engine).run()  # idempotent
    assert (again.merged, again.forgotten, again.strengthened) == (0, 0, 0)


async def test_decay_is_by_elapsed_time_and_forgetting_is_recoverable(engine: MemoryEngine) -> None:
    keep = await engine.add_memory("My daughter Lily was born on March 5th.", importance=0.9)
    fade = await engine.add_memory("The weather was a bit cloudy this morning.", importance=0.08)
    fresh = await engine.add_memory("ok then, see you", importance=0.01)
    await _age(engine, keep.row.id, 90)  # one importance half-life
    await _age(engine, fade.row.id, 90)

    report = await Secretary(engine).run()
    assert report.decayed >= 2 and report.forgotten == 1
    kept, _ = await engine.get(keep.row.id)
    assert abs(kept.row.importance - 0.45) < 0.01
    gone, _ = await engine.get(fade.row.id)
    assert gone.row.delete_reason == FORGOTTEN  # 0.04 < floor 0.05, older than a day
    young, _ = await engine.get(fresh.row.id)
    assert young.row.delete_reason == ACTIVE  # below the floor but created today: kept for now

    hits, _ = await engine.recall("how was the weather this morning", None, top_k=3, peek=True)
    assert fade.row.id not in [h.row.id for h in hits]
    await engine.restore(fade.row.id)
    hits, _ = await engine.recall("how was the weather this morning", None, top_k=1, peek=True)
    assert hits[0].row.id == fade.row.id

    again = await Secretary(engine).run()
    kept_again, _ = await engine.get(keep.row.id)
    assert abs(kept_again.row.importance - kept.row.importance) < 1e-3 and again.forgotten == 0


async def test_memories_recalled_together_get_linked(engine: MemoryEngine) -> None:
    a = await engine.add_memory("Our wedding anniversary is on June 21st.")
    b = await engine.add_memory("My wife's birthday is August 9th and she loves lilies.")
    await engine.add_memory("The kids' school starts at 8:15 every morning.")
    for _ in range(3):
        await engine.recall("important dates with my wife", None, top_k=2)
    report = await Secretary(engine).run()
    assert report.strengthened >= 1
    _, relations = await engine.get(a.row.id)
    co = [r for r in relations if r.kind == "co_recall" and {r.a_id, r.b_id} == {a.row.id, b.row.id}]
    assert co and abs(co[0].weight - 3 * engine.config.co_recall_weight) < 1e-6
    assert (await Secretary(engine).run()).strengthened == 0  # the pairs were consumed


async def test_secretary_runs_while_recall_is_serving(engine: MemoryEngine) -> None:
    for i in range(20):
        await engine.add_memory(f"Fact number {i}: I visited city {i} in the year {2000 + i}.")
        await engine.add_memory(f"Fact number {i}: I visited city {i} in the year {2000 + i}!")
    secretary = Secretary(engine)

    async def recall_loop() -> int:
        done = 0
        while not run.done():
            hits, _ = await engine.recall("which city did I visit in 2005", None, top_k=3)
            assert hits and all(h.row.delete_reason == ACTIVE for h in hits)
            done += 1
        return done

    run = asyncio.create_task(secretary.run())
    recalls = await recall_loop()
    report = await run
    assert report.merged == 20 and recalls >= 1
    assert (await engine.stats()).counts.active == 20
