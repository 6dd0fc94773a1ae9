"""Interrupt.played_ms: what the client had played decides what is stored as heard, also for an
answer that had completed on the server but was still playing when the person stopped it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshkit import Conversation, start_test_mesh

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from server.app.root import Mesh
from server.dialog.playout import PlayoutTracker
from server.rpc.auth import bearer_metadata
from server.rpc.channels import open_channel

RATE = 16000


def test_heard_text_counts_only_what_was_played() -> None:
    playout = PlayoutTracker(RATE)
    playout.segment_started(0, "One two three four.")
    playout.segment_started(1, "Five six seven eight.")
    second = RATE * 2  # bytes of one second of PCM16
    playout.segment_finished(0, 2 * second)
    playout.segment_finished(1, 2 * second)
    playout.chunk_built(0, [(0, 2 * second), (1, 2 * second)])
    playout.chunk_delivered(0)  # all four seconds delivered
    assert playout.heard_text() == "One two three four. Five six seven eight."
    assert playout.heard_text(played_ms=4000) == playout.heard_text()
    assert playout.heard_text(played_ms=2000) == "One two three four."
    assert playout.heard_text(played_ms=1000) == "One two"
    assert playout.heard_text(played_ms=3000) == "One two three four. Five six"
    assert playout.heard_text(played_ms=0) == ""
    assert playout.heard_text(played_ms=150) == ""  # "On" of "One": a word cut in half was not heard
    assert playout.heard_text(played_ms=2100) == "One two three four."  # nor is "Fi" of "Five"
    assert playout.all_heard() and playout.all_heard(played_ms=4000)
    assert not playout.all_heard(played_ms=3999)


@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "1", only=["tts", "core"])
    yield mesh
    await mesh.stop()


async def _completed_turn(talk: Conversation) -> tuple[str, str]:
    talk.say("tell me something")
    seen = await talk.until_state(pb.STATE_IDLE)
    final = next(e for e in seen if e.HasField("assistant_final"))
    assert any(e.HasField("audio_chunk") for e in seen) and not final.assistant_final.interrupted
    return final.turn_id, final.assistant_final.text


async def test_a_completed_answer_still_playing_is_stored_as_cut(mesh: Mesh) -> None:
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel, bearer_metadata(mesh.token))
        talk.config(session_id="played")
        await talk.next()
        turn_id, text = await _completed_turn(talk)
        talk.send(interrupt=pb.Interrupt(turn_id=turn_id, played_ms=1500))  # the client had played 1.5 s
        seen = await talk.until_state(pb.STATE_INTERRUPTED, timeout=30)
        assert [e.WhichOneof("event") for e in seen] == ["audio_cancel", "assistant_final", "metrics",
                                                          "state_update"]
        final = seen[1].assistant_final
        assert final.interrupted and final.text == text
        assert final.heard_text and text.startswith(final.heard_text) and len(final.heard_text) < len(text)
        talk.send(interrupt=pb.Interrupt(turn_id=turn_id, played_ms=1500))  # once cut, it has ended
        error = await talk.until("error")
        assert error[-1].error.code == "FAILED_PRECONDITION"
        stored = await pb_grpc.DialogServiceStub(channel).ListTurns(
            pb.ListTurnsRequest(session_id="played"), metadata=bearer_metadata(mesh.token))
        assert stored.turns[-1].interrupted and stored.turns[-1].heard_text == final.heard_text
        await talk.close()


async def test_an_answer_played_to_the_end_is_not_cut_afterwards(mesh: Mesh) -> None:
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel, bearer_metadata(mesh.token))
        talk.config(session_id="played-all")
        await talk.next()
        turn_id, _ = await _completed_turn(talk)
        talk.send(interrupt=pb.Interrupt(turn_id=turn_id, played_ms=10**6))  # all of it was played
        error = await talk.until("error")
        assert error[-1].error.code == "FAILED_PRECONDITION"
        talk.send(interrupt=pb.Interrupt(turn_id=turn_id))  # no played_ms: delivered counts as heard
        error = await talk.until("error")
        assert error[-1].error.code == "FAILED_PRECONDITION"
        stored = await pb_grpc.DialogServiceStub(channel).ListTurns(
            pb.ListTurnsRequest(session_id="played-all"), metadata=bearer_metadata(mesh.token))
        assert not stored.turns[-1].interrupted
        await talk.close()
