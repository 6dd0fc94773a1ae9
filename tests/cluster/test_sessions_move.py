"""Sessions move between bridges and cores (two cores, two bridges as processes on one
PostgreSQL and one Redis): a device that reconnects through the other bridge keeps its session
and history, two cores answering one session at once never number a turn twice, and a bridge
killed with -9 is survived by its devices."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed

from server.dialog.history import DialogTurnRow
from server.rpc.auth import bearer_metadata
from server.rpc.channels import open_channel as grpc_channel
from server.storage.db import Database
from tests.bridge.gateway_client import GatewayClient, action_is
from tests.cluster.processes import TOKEN, Served, device
from tests.meshkit import Conversation

pytestmark = pytest.mark.timeout(120)


async def _chat(client: GatewayClient, text: str, wait_s: float = 10.0) -> str:
    """One turn through the bridge; its turn id."""
    await client.request("chat", text=text)
    final = (await client.recv_until(action_is("assistant_final"), wait_s))[-1]
    return final.request.params["turn_id"]


async def _history(client: GatewayClient) -> list[dict[str, Any]]:
    rid = await client.request("history:list")
    answer = (await client.recv_until(lambda e: e.HasField("response") and e.response.request_id == rid))[-1]
    assert answer.response.status == 0, answer.response
    turns: list[dict[str, Any]] = json.loads(answer.response.data)["turns"]
    return turns


async def _rows(db_url: str, session_id: str) -> list[tuple[int, str, str]]:
    """(turn_index, role, text) of every stored row of the session, as PostgreSQL has them."""
    db = Database(db_url)
    try:
        stmt = (select(DialogTurnRow.turn_index, DialogTurnRow.role, DialogTurnRow.text)
                .where(DialogTurnRow.session_id == session_id).order_by(DialogTurnRow.id))
        return await db.run(lambda s: [(i, r, t) for i, r, t in s.execute(stmt).all()])
    finally:
        db.dispose()


async def _converse(core_address: str, session_id: str, name: str, turns: int) -> list[str]:
    """`turns` text turns one after the other on one core's Converse, in the given session."""
    async with grpc_channel(core_address, TOKEN) as channel:
        talk = Conversation(channel, bearer_metadata(TOKEN))
        try:
            talk.config(session_id=session_id, device_id=name, text_only=True)
            ids = []
            for i in range(turns):
                talk.say(f"{name} question {i}")
                final = (await talk.until("assistant_final", 20))[-1]
                ids.append(final.turn_id)
            return ids
        finally:
            await talk.close()


async def test_a_session_moves_to_the_other_bridge_and_core(cluster: list[Served], pg_url: str) -> None:
    core1, core2, bridge1, bridge2 = cluster
    one = await device(bridge1, "dev-move")
    assert one.welcome is not None
    session = one.welcome.session_id
    assert [await _chat(one, f"question {i}") for i in (1, 2)] == [f"{session}#1", f"{session}#2"]
    await one.close()

    # back within the grace window through bridge 2, whose core is core 2
    again = await device(bridge2, "dev-move")
    try:
        assert again.welcome is not None
        assert (again.welcome.session_id, again.welcome.resumed) == (session, True)
        assert await _chat(again, "question 3") == f"{session}#3"  # core 2 continues the numbering
        turns = await _history(again)
        assert [(t["turn_index"], t["user_text"]) for t in turns] == [
            (1, "question 1"), (2, "question 2"), (3, "question 3")]
        assert all(t["assistant_text"] for t in turns)
    finally:
        await again.close()

    # both cores answer turns of this session at the same time
    racing = await asyncio.gather(_converse(core1.address, session, "racer-1", 8),
                                  _converse(core2.address, session, "racer-2", 8))
    ids = racing[0] + racing[1]
    assert len(set(ids)) == 16
    rows = await _rows(pg_url, session)
    users = sorted(i for i, role, _ in rows if role == "user")
    answers = sorted(i for i, role, _ in rows if role == "assistant")
    assert users == answers == list(range(1, 20))  # 3 + 16 turns, each number once, every one answered


async def test_a_bridge_killed_with_minus_9_is_survived(cluster: list[Served], pg_url: str) -> None:
    _, _, bridge1, bridge2 = cluster
    one = await device(bridge1, "dev-kill")
    assert one.welcome is not None
    session = one.welcome.session_id
    answered = [await _chat(one, f"before {i}") for i in range(3)]
    await one.request("chat", text="in flight when the bridge dies")
    await bridge1.kill()
    started = asyncio.get_running_loop().time()
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        await one.recv_until(lambda e: False, 10)  # the socket drops with the process

    again = None
    while again is None:  # what a device does: try the next bridge it knows
        try:
            again = await device(bridge2, "dev-kill")
        except (OSError, AssertionError, ConnectionClosed):
            await asyncio.sleep(0.2)
        assert asyncio.get_running_loop().time() - started < 10
    try:
        assert again.welcome is not None
        assert (again.welcome.session_id, again.welcome.resumed) == (session, True)
        after = await _chat(again, "after the kill")
        took = asyncio.get_running_loop().time() - started
        print(f"bridge failover: chatting again {took:.2f} s after kill -9 of the bridge")
        assert took < 10, "chatting again took over 10 s"
    finally:
        await again.close()

    rows = await _rows(pg_url, session)
    for i, turn_id in enumerate(answered):  # nothing durable lost: every answered turn is stored
        index = int(turn_id.rsplit("#", 1)[1])
        assert (index, "user", f"before {i}") in rows
        assert any(r[:2] == (index, "assistant") for r in rows)
    after_index = int(after.rsplit("#", 1)[1])
    assert after_index > max(int(t.rsplit("#", 1)[1]) for t in answered)
    assert (after_index, "user", "after the kill") in rows
