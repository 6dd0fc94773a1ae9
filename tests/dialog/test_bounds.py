"""Memory stays bounded over weeks: caches evict, the outbound gate pushes back on slow readers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from meshkit import start_test_mesh

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from server.dialog import events
from server.dialog.gate import OutboundGate
from server.dialog.history import HistoryStore, upgrade_schema
from server.dialog.servicer import DialogServicer
from server.dialog.turn_counter import TurnCounter
from server.rpc.auth import bearer_metadata
from server.storage.db import Database, sqlite_url


async def database(tmp_path: Path) -> Database:
    db = Database(sqlite_url(tmp_path, "bounds"))
    await asyncio.to_thread(db.create_all)
    await asyncio.to_thread(upgrade_schema, db.engine)
    return db


async def test_history_cache_keeps_the_most_recent_sessions_and_reloads_the_rest(tmp_path: Path) -> None:
    db = await database(tmp_path)
    try:
        store = HistoryStore(db, max_context_turns=2, max_sessions=3)
        for n in range(10):
            session = f"s{n}"
            await store.context(session)  # cached from now on
            for turn in range(1, 6):
                await store.add_user(session, turn, f"{session} question {turn}")
                await store.add_assistant(session, turn, f"{session} answer {turn}", False, "")
        assert list(store._cache) == ["s7", "s8", "s9"]
        assert all(len(entries) <= 4 * store.max_context_turns for entries in store._cache.values())
        reloaded = await store.context("s0")  # evicted long ago: read back from the rows
        assert [m.content for m in reloaded] == ["s0 question 4", "s0 answer 4", "s0 question 5", "s0 answer 5"]
        assert "s7" not in store._cache and len(store._cache) == 3
    finally:
        db.dispose()


async def test_turn_counter_forgets_idle_sessions_and_resumes_from_history(tmp_path: Path) -> None:
    db = await database(tmp_path)
    try:
        store = HistoryStore(db)
        counter = TurnCounter(store, max_idle=4)
        for n in range(20):
            session = f"c{n}"
            counter.open(session)
            index = await counter.next(session)
            await store.add_user(session, index, "hi")
            counter.close(session)
        assert counter.known == 4
        counter.open("live")
        for n in range(20):  # a session with an open stream is never forgotten
            counter.open(f"d{n}")
            await counter.next(f"d{n}")
            counter.close(f"d{n}")
        assert await counter.next("live") == 1 and await counter.next("live") == 2
        counter.open("c0")
        assert await counter.next("c0") == 2  # forgotten, then continued from its stored turn
    finally:
        db.dispose()


async def test_gate_bounds_closed_turns_and_makes_data_producers_wait() -> None:
    gate = OutboundGate(capacity=4)
    for n in range(1000):
        gate.close_turn(f"s#{n}")
    assert len(gate._closed_turns) <= gate.capacity + 64 and gate.is_closed("s#999")
    for n in range(4):  # deltas of different turns: queued deltas of one turn would go out as one message
        await gate.send(events.delta(f"s#{1000 + n}", str(n)))
    blocked = asyncio.create_task(gate.send(events.delta("s#1000", "4")))
    gate.emit(events.state("s#1000", pb.STATE_IDLE))  # control events never wait
    await asyncio.sleep(0.05)
    assert not blocked.done() and gate.queued == 5
    reader = gate.events()
    first = await anext(reader)
    await asyncio.sleep(0.05)
    assert not blocked.done()  # the control event counts: still at capacity
    await anext(reader)
    await asyncio.wait_for(blocked, 1)  # below capacity: the producer goes on
    assert first.assistant_delta.text_delta == "0" and gate.peak == 5
    await reader.aclose()


async def test_a_direct_grpc_reader_that_stops_reading_holds_its_turn_back(data_dir: Path) -> None:
    capacity = 8
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "0", "--outbound-queue-events", str(capacity),
                                 only=["tts", "core"])
    assert mesh.core is not None
    servicer = mesh.core.dialog
    assert isinstance(servicer, DialogServicer)
    # no BDP probing: the HTTP/2 window stays at its 64 KiB default, less than one answer's audio
    channel = grpc.aio.insecure_channel(mesh.addresses["core"], options=[("grpc.http2.bdp_probe", 0)])
    requests: asyncio.Queue[pb.ConverseRequest | None] = asyncio.Queue()

    async def send() -> object:
        while (item := await requests.get()) is not None:
            yield item

    try:
        call = pb_grpc.DialogServiceStub(channel).Converse(send(), metadata=bearer_metadata(mesh.token))
        requests.put_nowait(pb.ConverseRequest(config=pb.SessionConfig(session_id="slow")))
        requests.put_nowait(pb.ConverseRequest(user_text=pb.UserText(text="talk to me")))
        await asyncio.sleep(3)  # the client reads nothing meanwhile
        session = next(iter(servicer.sessions))
        assert session.turn is not None and session.turn.active, "the turn waits for the reader"
        assert session.gate.peak <= capacity + 16, session.gate.peak
        seen: list[pb.ConverseResponse] = []
        while not (seen and seen[-1].HasField("state_update") and seen[-1].state_update.state == pb.STATE_IDLE):
            seen.append(await asyncio.wait_for(call.read(), 30))
        requests.put_nowait(None)
        call.cancel()
    finally:
        await channel.close()
        await mesh.stop()
    chunks = [e.audio_chunk.seq for e in seen if e.HasField("audio_chunk")]
    assert chunks == list(range(len(chunks))) and sum(len(e.audio_chunk.pcm) for e in seen) > 64 * 1024
    assert any(e.HasField("assistant_final") for e in seen)
    assert session.gate.peak <= capacity + 16
