"""Commit before you tell: an answer the client was told is final is already in history.

The chaos campaign (tests/chaos) kills a real process; these tests pin the
same promises in-process, where the database can be read at the exact
moment an event arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from meshkit import Conversation, start_test_mesh
from sqlalchemy import select

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.app.root import Mesh
from server.dialog.history import DialogTurnRow, HistoryStore
from server.events.outbox import OutboxEvent
from server.llm.prompt import fixed_prefix
from server.rpc.channels import open_channel
from server.storage.db import Database

LONG_TEXT = " ".join(f"This is sentence number {n} of a long answer, spoken slowly." for n in range(1, 31))


@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "0", "--scripted-text", LONG_TEXT,
                                 "--max-new-tokens", "1000", only=["tts", "core"])
    yield mesh
    await mesh.stop()


def history(mesh: Mesh) -> HistoryStore:
    store = mesh.core.deps.history
    assert isinstance(store, HistoryStore)
    return store


async def answer_row(db: Database, turn_id: str) -> DialogTurnRow | None:
    session, _, index = turn_id.rpartition("#")
    return await db.run(lambda s: s.scalar(select(DialogTurnRow).where(
        DialogTurnRow.session_id == session, DialogTurnRow.turn_index == int(index),
        DialogTurnRow.role == "assistant")))


async def event_types(db: Database, turn_id: str) -> list[str]:
    return await db.run(lambda s: sorted(s.scalars(select(OutboxEvent.event_type).where(
        OutboxEvent.correlation_id == turn_id))))


async def test_the_answer_and_its_memory_event_are_committed_before_the_final(mesh: Mesh) -> None:
    db = history(mesh).db
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        talk.config(session_id="durable")
        await talk.next()
        talk.say("tell me a long story")
        final = (await talk.until("assistant_final"))[-1]
        # read at the moment the final arrives, while the answer is still being spoken
        row = await answer_row(db, final.turn_id)
        types_at_final = await event_types(db, final.turn_id)
        rest = await talk.until_state(pb.STATE_IDLE)
        await talk.close()
    assert any(e.HasField("audio_chunk") for e in rest), "speech was still going when the final came"
    assert row is not None and row.text == final.assistant_final.text == LONG_TEXT and not row.interrupted
    assert types_at_final == ["LtmWriteRequested"]
    done = await answer_row(db, final.turn_id)
    assert done is not None and done.heard_text == LONG_TEXT and not done.interrupted
    assert await event_types(db, final.turn_id) == ["LtmWriteRequested", "TurnFinished"]


async def test_speech_cut_after_the_final_corrects_the_stored_row(mesh: Mesh) -> None:
    db = history(mesh).db
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        talk.config(session_id="corrected")
        await talk.next()
        talk.say("tell me a long story")
        first = (await talk.until("assistant_final"))[-1]
        talk.interrupt()  # thirty sentences of speech are still being synthesised
        events = await talk.until_state(pb.STATE_INTERRUPTED)
        await talk.close()
    second = next(e.assistant_final for e in events if e.HasField("assistant_final"))
    assert not first.assistant_final.interrupted and second.interrupted
    assert len(second.heard_text) < len(LONG_TEXT)
    row = await answer_row(db, first.turn_id)
    assert row is not None and row.text == LONG_TEXT and row.interrupted and row.heard_text == second.heard_text
    assert await event_types(db, first.turn_id) == ["LtmWriteRequested", "TurnFinished"]  # one of each


async def test_an_interrupted_answer_is_stored_before_its_final(data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "30", only=["core"])
    try:
        db = history(mesh).db
        async with open_channel(mesh.addresses["core"], mesh.token) as channel:
            talk = Conversation(channel)
            talk.config(session_id="cut", text_only=True)
            await talk.next()
            talk.say("go on")
            await talk.until("assistant_delta")
            talk.interrupt()
            final = (await talk.until("assistant_final"))[-1]
            row = await answer_row(db, final.turn_id)
            await talk.close()
    finally:
        await mesh.stop()
    assert final.assistant_final.interrupted
    assert row is not None and row.interrupted and row.text == final.assistant_final.text


async def test_a_question_an_earlier_process_never_answered_is_abandoned(data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "1", only=["core"])
    try:
        store = history(mesh)
        before = store.opened_at - timedelta(minutes=5)  # written by the process that died
        await store.db.run(lambda s: s.add_all([
            DialogTurnRow(session_id="crashed", turn_index=1, role="user", text="What is my cat called?",
                          created_at=before),
            DialogTurnRow(session_id="crashed", turn_index=1, role="assistant", text="Miso.", created_at=before),
            DialogTurnRow(session_id="crashed", turn_index=2, role="user", text="the lost question",
                          created_at=before),
        ]))
        async with open_channel(mesh.addresses["core"], mesh.token) as channel:
            talk = Conversation(channel)
            talk.config(session_id="crashed", text_only=True)
            started = (await talk.next()).session_started
            talk.say("and my dog?")
            events = await talk.until_state(pb.STATE_IDLE)
            await talk.close()
        lost = await store.db.run(lambda s: s.scalar(select(DialogTurnRow).where(
            DialogTurnRow.session_id == "crashed", DialogTurnRow.turn_index == 2)))
        prompt = mesh.core.deps.llm.calls[-1].messages
        answered = await store.answered_turns("crashed")
    finally:
        await mesh.stop()
    assert started.history_turns == 1  # answered turns, not the highest turn number (2)
    assert lost is not None and lost.abandoned
    assert events[0].turn_id == "crashed#3"  # numbers are never reused
    assert "the lost question" not in [m.content for m in prompt]
    assert [m.content for m in prompt[fixed_prefix(prompt):]][:2] == ["What is my cat called?", "Miso."]
    assert answered == 2
