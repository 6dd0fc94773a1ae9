"""Bad input on Converse: precise errors, and the stream stays usable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from meshkit import Conversation, kinds, start_test_mesh

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.app.root import Mesh
from server.rpc.channels import open_channel


@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "2", only=["core"])
    yield mesh
    await mesh.stop()


async def expect_error(talk: Conversation, code: str, fragment: str) -> pb.ErrorEvent:
    event = await talk.next(10)
    assert event.HasField("error"), event
    assert event.error.code == code and fragment in event.error.message, event.error
    return event.error


async def test_errors_are_precise_and_the_stream_survives(mesh: Mesh) -> None:
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        talk.say("too early")
        await expect_error(talk, "FAILED_PRECONDITION", "before `config`")
        talk.send()  # an empty message
        await expect_error(talk, "INVALID_ARGUMENT", "empty ConverseRequest")
        talk.config(session_id="bad id with spaces")
        await expect_error(talk, "INVALID_ARGUMENT", "session_id")
        talk.config(session_id="ok", sample_rate_hertz=1000)
        await expect_error(talk, "INVALID_ARGUMENT", "sample_rate_hertz 1000")
        talk.config(session_id="bad-input", text_only=True)
        assert (await talk.next()).HasField("session_started")
        talk.config(session_id="again")
        await expect_error(talk, "FAILED_PRECONDITION", "already received")
        talk.say("   ")
        await expect_error(talk, "INVALID_ARGUMENT", "1..8000 characters")
        talk.say("x" * 8001)
        await expect_error(talk, "INVALID_ARGUMENT", "got 8001")
        talk.interrupt("bad-input#99")
        await expect_error(talk, "NOT_FOUND", "no turn 'bad-input#99'")
        talk.send(user_audio=pb.UserAudio(pcm=b"\0\0" * 160, sample_rate_hertz=1000))  # bad rate
        error = await talk.next(10)
        assert error.error.code in ("UNIMPLEMENTED", "INVALID_ARGUMENT") or error.HasField("state_update")
        # still usable: a real turn goes through, then interrupting it afterwards is refused precisely
        talk.say("now a real question")
        events = await talk.until_state(pb.STATE_IDLE)
        assert "assistant_final" in kinds(events)
        turn_id = events[-1].turn_id
        talk.interrupt(turn_id)
        await expect_error(talk, "FAILED_PRECONDITION", "already ended")
        talk.interrupt()  # nothing running: silently nothing
        talk.half_close()
        assert await talk.rest() == []


async def test_unknown_fields_are_ignored(mesh: Mesh) -> None:
    """A newer client's extra field (unknown tag) must not break an older server."""
    request = pb.ConverseRequest(config=pb.SessionConfig(session_id="unk", text_only=True))
    raw = request.SerializeToString() + bytes([0xF8, 0x06, 0x01])  # field 111, varint 1
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        call = channel.stream_stream("/peromesh.dialog.v1.DialogService/Converse",
                                     request_serializer=lambda b: b,
                                     response_deserializer=pb.ConverseResponse.FromString)

        async def requests() -> AsyncIterator[bytes]:
            yield raw

        responses = [r async for r in call(requests())]
    assert responses[0].session_started.session_id == "unk"


async def test_oversize_message_is_rejected_by_the_transport(mesh: Mesh) -> None:
    async with open_channel(mesh.addresses["core"], mesh.token, max_message_bytes=64 * 1024 * 1024) as channel:
        talk = Conversation(channel)
        talk.config(session_id="huge", text_only=True)
        talk.say("y" * (5 * 1024 * 1024))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await talk.call.read()
            await talk.call.read()
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        await talk.close()


async def test_cancelled_call_releases_its_session_and_stores_the_cut_turn(mesh: Mesh) -> None:
    assert mesh.core is not None
    servicer = mesh.core.dialog
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        talk.config(session_id="gone", text_only=True)
        talk.say("start talking")
        await talk.until("assistant_delta")
        assert servicer.open_sessions == 1
        await talk.close()  # the client disappears mid-turn
        for _ in range(100):
            if servicer.open_sessions == 0:
                break
            await asyncio.sleep(0.02)
    assert servicer.open_sessions == 0
    history = mesh.core.deps.history
    assert await history.answered_turns("gone") == 1
    rows = await history.stored("gone")
    assert [m.role for m in rows] == ["user", "assistant"] and rows[1].content.endswith(" …")
