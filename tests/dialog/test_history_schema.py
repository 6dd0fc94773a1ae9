"""The dialog table on disk: an older table gains `abandoned`; a failed turn's question is abandoned."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from meshkit import Conversation, start_test_mesh
from sqlalchemy import inspect, select, text

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.dialog.history import DialogTurnRow, HistoryStore, upgrade_schema
from server.rpc.channels import open_channel
from server.storage.db import Database, sqlite_url

OLD_TABLE = """CREATE TABLE dialog_turns (id INTEGER PRIMARY KEY, session_id VARCHAR(64) NOT NULL,
    turn_index INTEGER NOT NULL, role VARCHAR(16) NOT NULL, text TEXT NOT NULL, heard_text TEXT NOT NULL,
    interrupted BOOLEAN NOT NULL, created_at TIMESTAMP WITH TIME ZONE NOT NULL)"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_table_of_the_previous_version_is_upgraded_in_place(backend: str, tmp_path: Path,
                                                                     request: pytest.FixtureRequest) -> None:
    url = sqlite_url(tmp_path, "old") if backend == "sqlite" else request.getfixturevalue("pg_url")
    db = Database(url)
    try:
        with db.engine.begin() as conn:
            conn.execute(text(OLD_TABLE))
            conn.execute(text("INSERT INTO dialog_turns (id, session_id, turn_index, role, text, heard_text, "
                              "interrupted, created_at) VALUES (1, 'old', 1, 'user', 'hi', '', false, "
                              "'2026-01-01 00:00:00+00')"))
        await asyncio.to_thread(db.create_all)
        await asyncio.to_thread(upgrade_schema, db.engine)
        await asyncio.to_thread(upgrade_schema, db.engine)  # a second start changes nothing
        assert "abandoned" in {c["name"] for c in inspect(db.engine).get_columns("dialog_turns")}
        store = HistoryStore(db)
        assert await store.open_session("old") == 0  # never answered, by a process long gone
        row = await db.run(lambda s: s.scalar(select(DialogTurnRow)))
        assert row is not None and row.abandoned and await store.stored("old") == []
    finally:
        db.dispose()


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


async def test_a_failed_turn_abandons_its_question(data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, "--llm", "openai", "--openai-base-url", dead_url(), only=["core"])
    try:
        async with open_channel(mesh.addresses["core"], mesh.token) as channel:
            talk = Conversation(channel)
            talk.config(session_id="failing", text_only=True)
            await talk.next()
            talk.say("will you answer?")
            events = await talk.until_state(pb.STATE_IDLE)
            talk.half_close()
            await talk.rest()
        store = mesh.core.deps.history
        row = await store.db.run(lambda s: s.scalar(select(DialogTurnRow).where(
            DialogTurnRow.session_id == "failing")))
        stored = await store.stored("failing")
    finally:
        await mesh.stop()
    assert any(e.HasField("error") and e.error.code == "INTERNAL" for e in events)
    assert row is not None and row.role == "user" and row.abandoned and stored == []
