"""DialogService.ListTurns on a real core: paging, what was heard of a cut answer, refusals, auth.

Turns are made the way clients make them (Converse streams on a real gRPC
server) and read back through a real stub. SQLite and PostgreSQL both run
the paging test: the page query must mean the same on both.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from meshkit import Conversation, start_test_mesh

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from server.app.root import Mesh
from server.dialog.history import DialogTurnRow, HistoryStore
from server.llm.scripted import DEFAULT_TEXT
from server.rpc.channels import open_channel

LONG_TEXT = " ".join(f"This is sentence number {n} of a long answer, spoken slowly." for n in range(1, 31))


@pytest.fixture(params=["sqlite", "postgresql"])
async def mesh(request: pytest.FixtureRequest, data_dir: Path) -> AsyncIterator[Mesh]:
    flags = ["--db-url", request.getfixturevalue("pg_url")] if request.param == "postgresql" else []
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "0", *flags, only=["core"])
    yield mesh
    await mesh.stop()


@pytest.fixture
async def speaking_mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    """Answers written at once and spoken for a long time: there is speech to cut."""
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "0", "--scripted-text", LONG_TEXT,
                                 "--max-new-tokens", "1000", only=["tts", "core"])
    yield mesh
    await mesh.stop()


async def converse(channel: grpc.aio.Channel, session_id: str, texts: list[str]) -> None:
    """One text-only stream of `session_id` that says each text and waits for its answer."""
    talk = Conversation(channel)
    talk.config(session_id=session_id, text_only=True)
    await talk.next()
    for text in texts:
        talk.say(text)
        await talk.until_state(pb.STATE_IDLE)
    talk.half_close()
    await talk.rest()


async def page(stub: pb_grpc.DialogServiceStub, session_id: str, size: int = 0,
               token: str = "") -> pb.ListTurnsResponse:
    response: pb.ListTurnsResponse = await stub.ListTurns(
        pb.ListTurnsRequest(session_id=session_id, page_size=size, page_token=token))
    return response


async def test_pages_go_back_in_time_and_stay_stable(mesh: Mesh) -> None:
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        stub = pb_grpc.DialogServiceStub(channel)
        await converse(channel, "pages", [f"message {n}" for n in range(1, 6)])
        await converse(channel, "elsewhere", ["not in this session"])
        first = await page(stub, "pages", 2)
        await converse(channel, "pages", ["message 6"])  # the conversation goes on between pages
        second = await page(stub, "pages", 2, first.next_page_token)
        third = await page(stub, "pages", 2, second.next_page_token)
        everything = await page(stub, "pages")
        unknown = await page(stub, "nobody-here")

    assert [t.turn_id for t in first.turns] == ["pages#4", "pages#5"]  # the newest, oldest first
    assert [t.user_text for t in second.turns] == ["message 2", "message 3"]  # not shifted by turn 6
    assert [t.turn_index for t in third.turns] == [1] and third.next_page_token == ""
    assert first.next_page_token and second.next_page_token
    assert [t.user_text for t in everything.turns] == [f"message {n}" for n in range(1, 7)]
    assert everything.next_page_token == ""
    for turn in everything.turns:
        assert turn.assistant_text == DEFAULT_TEXT and turn.heard_text == DEFAULT_TEXT
        assert not turn.interrupted and not turn.abandoned
    stamps = [t.create_time.ToDatetime() for t in everything.turns]
    assert stamps == sorted(stamps) and all(everything.turns[i].HasField("create_time") for i in range(6))
    assert list(unknown.turns) == [] and unknown.next_page_token == ""


async def test_a_page_holds_at_most_one_hundred_turns(data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, only=["core"])
    try:
        store: HistoryStore = mesh.core.deps.history
        await store.db.run(lambda s: s.add_all([
            DialogTurnRow(session_id="long", turn_index=n, role=role, text=f"{role} {n}")
            for n in range(1, 106) for role in ("user", "assistant")]))
        async with open_channel(mesh.addresses["core"], mesh.token) as channel:
            stub = pb_grpc.DialogServiceStub(channel)
            big = await page(stub, "long", 1000)
            rest = await page(stub, "long", 1000, big.next_page_token)
            default = await page(stub, "long")
    finally:
        await mesh.stop()
    assert [t.turn_index for t in big.turns] == list(range(6, 106))
    assert [t.turn_index for t in rest.turns] == list(range(1, 6)) and rest.next_page_token == ""
    assert len(default.turns) == 20 and default.turns[-1].assistant_text == "assistant 105"


async def test_a_cut_answer_shows_what_was_heard(speaking_mesh: Mesh) -> None:
    async with open_channel(speaking_mesh.addresses["core"], speaking_mesh.token) as channel:
        talk = Conversation(channel)
        talk.config(session_id="cut")
        await talk.next()
        talk.say("Tell me a long story")
        events = await talk.until("audio_chunk")
        talk.interrupt()  # the text may be final already; the speech is far from it
        events += await talk.until_state(pb.STATE_INTERRUPTED)
        talk.half_close()
        await talk.rest()  # the stream's teardown has stored what the user heard
        [turn] = (await page(pb_grpc.DialogServiceStub(channel), "cut")).turns
    final = [e.assistant_final for e in events if e.HasField("assistant_final")][-1]  # the cut's verdict
    assert final.interrupted and turn.interrupted and not turn.abandoned
    assert turn.user_text == "Tell me a long story" and turn.assistant_text == final.text
    assert turn.heard_text == final.heard_text and len(turn.heard_text) < len(turn.assistant_text)
    assert turn.assistant_text.startswith(turn.heard_text)


async def test_a_question_that_was_never_answered_is_listed_as_abandoned(data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "0", only=["core"])
    try:
        store: HistoryStore = mesh.core.deps.history
        before = store.opened_at - timedelta(minutes=5)  # written by a process that died mid-turn
        await store.db.run(lambda s: s.add_all([
            DialogTurnRow(session_id="crashed", turn_index=1, role="user", text="hi", created_at=before),
            DialogTurnRow(session_id="crashed", turn_index=1, role="assistant", text="hello", created_at=before),
            DialogTurnRow(session_id="crashed", turn_index=2, role="user", text="the lost question",
                          created_at=before)]))
        async with open_channel(mesh.addresses["core"], mesh.token) as channel:
            await converse(channel, "crashed", ["still there?"])
            turns = (await page(pb_grpc.DialogServiceStub(channel), "crashed")).turns
    finally:
        await mesh.stop()
    assert [(t.turn_index, t.user_text, t.abandoned) for t in turns] == [
        (1, "hi", False), (2, "the lost question", True), (3, "still there?", False)]
    assert turns[1].assistant_text == "" and turns[2].assistant_text == DEFAULT_TEXT
    assert turns[0].create_time.ToDatetime() < turns[2].create_time.ToDatetime()


def token_of(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


@pytest.mark.parametrize(("request_fields", "needle"), [
    ({"session_id": ""}, "session_id is required"),
    ({"session_id": "x" * 65}, "longer than 64"),
    ({"session_id": "s", "page_size": -1}, "page_size must not be negative"),
    ({"session_id": "s", "page_token": "not a token!"}, "not a token of ListTurns"),
    ({"session_id": "s", "page_token": token_of("s\nseven")}, "not a token of ListTurns"),
    ({"session_id": "s", "page_token": "A" * 600}, "too long"),
    ({"session_id": "s", "page_token": token_of("other\n3")}, "belongs to another session"),
])
async def test_bad_requests_are_invalid_argument(data_dir: Path, request_fields: dict[str, Any],
                                                 needle: str) -> None:
    mesh = await start_test_mesh(data_dir, only=["core"])
    try:
        async with open_channel(mesh.addresses["core"], mesh.token) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await pb_grpc.DialogServiceStub(channel).ListTurns(pb.ListTurnsRequest(**request_fields))
    finally:
        await mesh.stop()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in (caught.value.details() or "")


async def test_history_needs_the_mesh_token(data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, only=["core"])
    try:
        for token in (None, "wrong-token"):
            async with open_channel(mesh.addresses["core"], token) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await pb_grpc.DialogServiceStub(channel).ListTurns(pb.ListTurnsRequest(session_id="s"))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await mesh.stop()
