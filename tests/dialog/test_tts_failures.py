"""The core keeps talking (as text) when the TTS server is down or dies mid-turn."""

from __future__ import annotations

import socket
from pathlib import Path

from meshkit import Conversation, kinds, start_test_mesh

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.llm.scripted import DEFAULT_TEXT
from server.rpc.channels import open_channel


def dead_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


async def test_tts_down_gives_an_error_event_and_a_text_answer(data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, "--tts-addr", dead_address(), "--scripted-delay-ms", "1", only=["core"])
    try:
        async with open_channel(mesh.addresses["core"], mesh.token) as channel:
            talk = Conversation(channel)
            talk.config(session_id="no-tts")
            talk.say("hello")
            events = await talk.until_state(pb.STATE_IDLE)
            talk.say("again")  # the stream stays usable
            events2 = await talk.until_state(pb.STATE_IDLE)
            await talk.close()
    finally:
        await mesh.stop()
    errors = [e.error for e in events if e.HasField("error")]
    assert errors and errors[0].code == "UNAVAILABLE" and "speech synthesis failed" in errors[0].message
    final = next(e.assistant_final for e in events if e.HasField("assistant_final"))
    assert final.text == DEFAULT_TEXT
    assert "audio_chunk" not in kinds(events) and "assistant_final" in kinds(events2)


async def test_tts_dying_mid_turn_ends_audio_cleanly(data_dir: Path) -> None:
    tts = await start_test_mesh(data_dir / "tts", only=["tts"])
    core = await start_test_mesh(data_dir / "core", "--tts-addr", tts.addresses["tts"], "--scripted-delay-ms", "15",
                                 only=["core"])
    try:
        async with open_channel(core.addresses["core"], core.token) as channel:
            talk = Conversation(channel)
            talk.config(session_id="dies")
            talk.say("hello")
            before = await talk.until("audio_chunk")
            # the TTS server dies (no grace) while the model is still generating
            await tts.tts.server.server.stop(None)  # type: ignore[attr-defined]
            after = await talk.until_state(pb.STATE_IDLE)
            await talk.close()
    finally:
        await core.stop()
        await tts.stop()
    events = before + after
    names = kinds(events)
    assert "error" in names and names.index("audio_end") > names.index("audio_begin")
    assert next(e.assistant_final for e in events if e.HasField("assistant_final")).text == DEFAULT_TEXT
    assert names[-2:] == ["metrics", "state_update"]
