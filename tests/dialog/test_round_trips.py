"""What a turn costs the database: counted per transaction with SQLAlchemy events on the core's engine.

A text turn completed as answered writes its question, its answer with the memory event, and its
closing analytics event, and never updates the answer row again (nothing about it changed); the
turns of concurrent sessions share transactions (group commit, server/storage/db.py)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from meshkit import Conversation, start_test_mesh
from sqlalchemy import event

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.app.root import Mesh
from server.dialog.history import HistoryStore
from server.rpc.channels import open_channel


@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "1", "--asr-model", "none", only=["core"])
    yield mesh
    await mesh.stop()


class Transactions:
    """The statements of every committed transaction on an engine, in commit order."""

    def __init__(self, store: HistoryStore) -> None:
        self.committed: list[list[str]] = []
        self._open: dict[int, list[str]] = defaultdict(list)
        event.listen(store.db.engine, "before_cursor_execute", self._statement)
        event.listen(store.db.engine, "commit", self._commit)

    def _statement(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self._open[id(conn)].append(" ".join(statement.split()))

    def _commit(self, conn: Any) -> None:
        self.committed.append(self._open.pop(id(conn), []))


async def _turns(channel: Any, session: str, n: int) -> None:
    talk = Conversation(channel)
    talk.config(session_id=session, text_only=True)
    await talk.until("session_started")
    for i in range(n):
        talk.say(f"question {i}")
        await talk.until_state(pb.STATE_IDLE)
    await talk.close()


def _store(mesh: Mesh) -> HistoryStore:
    assert mesh.core is not None and isinstance(mesh.core.deps.history, HistoryStore)
    return mesh.core.deps.history


async def test_a_completed_text_turn_does_not_update_its_answer_again(mesh: Mesh) -> None:
    counted = Transactions(_store(mesh))
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        await _turns(channel, "lean", 4)
    statements = [s for t in counted.committed for s in t]
    assert not [s for s in statements if s.startswith("UPDATE dialog_turns SET interrupted")]
    assert sum(s.startswith("INSERT INTO dialog_turns") for s in statements) == 8  # question and answer, 4 turns
    assert sum(s.startswith("INSERT INTO outbox_events") for s in statements) == 8  # memory and analytics


async def test_concurrent_sessions_share_transactions(mesh: Mesh) -> None:
    counted = Transactions(_store(mesh))
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        await asyncio.gather(*(_turns(channel, f"s{i}", 3) for i in range(20)))
    writes = [t for t in counted.committed if any(s.startswith(("INSERT", "UPDATE")) for s in t)]
    inserted = sum(s.startswith("INSERT") for t in writes for s in t)
    assert inserted >= 20 * 3 * 4  # every question, answer and event
    # One transaction per write would be more transactions than inserts (the relay's records add to them);
    # grouped, this run shares them about 2-3 inserts a transaction (81..126 of 240 seen).
    assert len(writes) < inserted * 3 / 4, (len(writes), inserted)
