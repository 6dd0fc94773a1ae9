"""PeroCore's own clients (PeroLink v1), rebuilt from our contracts, against a real bridge + core + TTS.

PeroCore's clients are external, so their wire behaviour is played here from
the Gateway contract: binary protobuf frames, a hello without the
`protocol_version` extension, then a chat. What they need, and what is
checked: every audio DataStream is one complete WAV file (PeroCore's pet
view decodes each with WebAudio's decodeAudioData), sent clause by clause;
`new_message` for the user's message and the answer (its chat view); no
`state_update` (PeroCore's name for the pet's mood state); `ping` answered.
A client that negotiated protocol_version 1 keeps raw PCM and state_update.
"""

from __future__ import annotations

import datetime
import io
import json
import struct
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshkit import start_test_mesh

from bridge.clause_audio import MAX_CLAUSE_BYTES, ClauseFiles, wav_file
from bridge.outbound import Kind
from bridge.translate import EventTranslator
from peromesh.dialog.v1 import dialog_service_pb2 as dpb
from peromesh.gateway.v1 import envelope_pb2 as gw
from server.app.root import Mesh

from .gateway_client import GatewayClient, action_is, actions

MESH = ("tts", "core", "bridge")
TEXT = "Hello Pero, how are you?"


def pcm_of(data: bytes) -> tuple[bytes, int, int]:
    """Decode one DataStream as a WAV file, as a player would; fails unless the file is complete."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", data[:16]
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8  # the RIFF size is the file's
    with wave.open(io.BytesIO(data)) as reader:
        frames = reader.getnframes()
        pcm = reader.readframes(frames)
        assert reader.getsampwidth() == 2 and frames > 0
        assert len(pcm) == frames * reader.getnchannels() * 2 == len(data) - 44  # header, then exactly the frames
        return pcm, reader.getframerate(), reader.getnchannels()


def event(turn: str, **kind: object) -> dpb.ConverseResponse:
    return dpb.ConverseResponse(turn_id=turn, **kind)  # type: ignore[arg-type]


def chunk(pcm: bytes, clause_end: bool = False) -> dpb.ConverseResponse:
    return event("s#1", audio_chunk=dpb.AudioChunk(pcm=pcm, clause_end=clause_end))


def tone(n: int, seed: int) -> bytes:
    return bytes((seed + i) % 251 for i in range(n))


# -- the translator, pure ----------------------------------------------------------
def test_v1_speech_is_one_complete_wav_per_clause() -> None:
    t = EventTranslator("pet")
    [begin] = t.translate(event("s#1", audio_begin=dpb.AudioBegin(sample_rate_hertz=24000, channels=1)))
    assert begin.envelope.request.params["mime"] == "audio/wav"
    first = [tone(4096, 1), tone(8192, 2), tone(5000, 3)]
    assert t.translate(chunk(first[0])) == [] and t.translate(chunk(first[1])) == []  # the clause is not over
    [clause1] = t.translate(chunk(first[2], clause_end=True))
    [clause2] = t.translate(chunk(tone(4096, 4), clause_end=True))
    assert t.translate(chunk(tone(6000, 5))) == []  # a last clause with no marked end ...
    [trailing, end] = t.translate(event("s#1", audio_end=dpb.AudioEnd(chunk_count=5)))  # ... is sent at the end
    streams = [o.envelope.stream for o in (clause1, clause2, trailing)]
    assert [pcm_of(s.data) for s in streams] == [(b"".join(first), 24000, 1), (tone(4096, 4), 24000, 1),
                                                 (tone(6000, 5), 24000, 1)]
    assert [s.stream_id for s in streams] == ["s#1/0", "s#1/1", "s#1/2"]  # each file a whole stream of its own
    assert all(s.is_end and s.seq == 0 and s.turn_id == "s#1" and s.content_type == "audio/wav" for s in streams)
    assert all(o.kind is Kind.AUDIO and o.turn_id == "s#1" for o in (clause1, clause2, trailing))
    assert end.envelope.request.action_name == "audio_end"  # and no empty end marker: it would not decode


def test_v1_clause_buffer_is_bounded_and_cut_between_chunks() -> None:
    files = ClauseFiles(16000, 1, max_bytes=10_000)
    out = [f for piece in (tone(4096, 1), tone(4096, 2), tone(4096, 3), tone(9000, 4)) for f in files.add(piece, False)]
    out += files.finish()
    assert [len(pcm_of(f)[0]) for f in out] == [8192, 4096, 9000]  # never over the bound, never mid-chunk
    assert wav_file(b"\x01\x02\x03", 8000, 1)[40:44] == struct.pack("<I", 2)  # a partial frame is dropped


def test_v1_cancel_drops_the_unfinished_clause() -> None:
    t = EventTranslator("pet")
    t.translate(event("s#1", audio_begin=dpb.AudioBegin(sample_rate_hertz=24000)))
    assert t.translate(chunk(tone(8192, 1))) == []
    [cancel] = t.translate(event("s#1", audio_cancel=dpb.AudioCancel(chunks_sent=1)))
    assert cancel.envelope.request.action_name == "audio_cancel"
    assert t.translate(event("s#1", audio_end=dpb.AudioEnd(chunk_count=1)))[0].envelope.stream.data == b""


def test_v1_events_in_perocore_terms() -> None:
    v1, mesh = EventTranslator("pet"), EventTranslator("app", perolink_v1=False)
    thinking = event("s#1", state_update=dpb.StateUpdate(state=dpb.STATE_THINKING))
    [status] = v1.translate(thinking)
    assert (status.envelope.request.action_name, dict(status.envelope.request.params)) == (
        "voice_update", {"turn_id": "s#1", "type": "status", "content": "thinking"})
    assert actions([o.envelope for o in mesh.translate(thinking)]) == ["state_update"]
    final = event("s#1", assistant_final=dpb.AssistantFinal(text="Hi there", interrupted=True, heard_text="Hi"))
    out = [o.envelope for o in v1.translate(final)]
    assert actions(out) == ["assistant_final", "text_response", "voice_update", "new_message"]
    message = dict(out[-1].request.params)
    assert message.pop("metadata") and json.loads(out[-1].request.params["metadata"]) == {
        "turn_id": "s#1", "interrupted": True, "heard_text": "Hi"}
    when = datetime.datetime.fromisoformat(message.pop("timestamp"))
    assert abs((datetime.datetime.now(datetime.UTC) - when).total_seconds()) < 60
    assert message == {"turn_id": "s#1", "id": "s#1:assistant", "role": "assistant", "content": "Hi there",
                       "agent_id": "pero"}
    assert actions([o.envelope for o in mesh.translate(final)]) == ["assistant_final"]
    [said] = v1.user_message("s#1", "hello")
    assert (said.envelope.request.params["role"], said.envelope.request.params["content"]) == ("user", "hello")
    assert mesh.user_message("s#1", "hello") == []
    spoken = [o.envelope for o in v1.translate(event("s#2", transcription=dpb.Transcription(text="hi", is_final=True)))]
    assert actions(spoken) == ["transcription", "voice_update", "new_message"]  # a voice turn's user message
    assert spoken[-1].request.params["role"] == "user" and spoken[-1].request.params["id"] == "s#2:user"
    silence = event("", transcription=dpb.Transcription(text="", is_final=True))  # no turn: no message
    assert "new_message" not in actions([o.envelope for o in v1.translate(silence)])


# -- the wire, end to end ------------------------------------------------------------
@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    running = await start_test_mesh(data_dir, "--scripted-delay-ms", "5", only=MESH)
    yield running
    await running.stop()


def url(mesh: Mesh) -> str:
    return f"ws://{mesh.addresses['bridge']}/ws"


def idle_status(e: gw.Envelope) -> bool:
    return action_is("voice_update")(e) and dict(e.request.params) == {
        "turn_id": e.request.params["turn_id"], "type": "status", "content": "idle"}


async def test_perocore_client_plays_wav_clauses_sees_messages_and_no_state_update(mesh: Mesh) -> None:
    pet = await GatewayClient.open(url(mesh), "pet", binary=True, protocol_version=0)  # PeroLink v1: no extension
    await pet.request("ping")
    pong = await pet.recv()
    assert (pong.response.status, pong.response.data) == (0, "pong") and pong.response.request_id.startswith("pet-")

    await pet.request("chat", text=TEXT)
    got = await pet.recv_until(idle_status, 90)
    names = actions(got)
    assert "state_update" not in names  # PeroCore's state_update is the pet's mood: never a voice state
    files = [e.stream for e in got if e.HasField("stream")]
    decoded = [pcm_of(s.data) for s in files]  # every DataStream is one complete, decodable file
    assert len(files) >= 2 and {(rate, ch) for _, rate, ch in decoded} == {(24000, 1)}
    assert all(s.is_end and s.content_type == "audio/wav" for s in files)
    speech = b"".join(pcm for pcm, _, _ in decoded)
    # clause by clause (the scripted answer has five sentences), cut where the core marked a clause's end,
    # not at the size bound
    assert len(files) >= 5 and all(len(pcm) < MAX_CLAUSE_BYTES for pcm, _, _ in decoded)
    audio_end = names.index("audio_end")
    assert got.index(next(e for e in got if e.HasField("stream"))) < audio_end

    messages = [e.request.params for e in got if action_is("new_message")(e)]
    final = next(e for e in got if action_is("assistant_final")(e)).request.params
    assert [(m["role"], m["content"]) for m in messages] == [("user", TEXT), ("assistant", final["text"])]
    assert all(m["agent_id"] and m["id"] and m["timestamp"] and m["turn_id"] == final["turn_id"] for m in messages)
    assert len({m["id"] for m in messages}) == 2

    # the same answer for a client that negotiated the PeroMesh protocol: raw PCM chunks and state_update, as today
    app = await GatewayClient.open(url(mesh), "app", binary=True, protocol_version=1)
    await app.request("chat", text=TEXT)
    seen = await app.recv_until(lambda e: action_is("state_update")(e) and e.request.params["state"] == "idle", 90)
    assert not set(actions(seen)) & {"new_message", "voice_update", "text_response"}
    chunks = [e.stream for e in seen if e.HasField("stream")]
    assert {s.content_type for s in chunks} == {"audio/pcm;rate=24000;channels=1"}
    assert chunks[-1].is_end and chunks[-1].data == b"" and [s.seq for s in chunks] == list(range(len(chunks)))
    pcm_bytes = sum(len(s.data) for s in chunks)  # the same speech (synthesis varies a little from run to run)
    assert abs(pcm_bytes - len(speech)) < 0.1 * pcm_bytes, (pcm_bytes, len(speech))
    await pet.close()
    await app.close()


async def test_perocore_client_interrupted_answer(mesh: Mesh) -> None:
    pet = await GatewayClient.open(url(mesh), "pet", binary=True, protocol_version=0)
    await pet.request("chat", text="Tell me a long story")
    before = await pet.recv_until(lambda e: e.HasField("stream"), 60)
    turn = before[-1].stream.turn_id
    pcm_of(before[-1].stream.data)
    await pet.request("interrupt", turn_id=turn)
    after = await pet.recv_until(lambda e: idle_status(e) or (
        action_is("voice_update")(e) and e.request.params["content"] == "interrupted"), 60)
    cut = next(i for i, e in enumerate(after) if action_is("audio_cancel")(e))
    assert not any(e.HasField("stream") for e in after[cut:])
    [answer] = [e.request.params for e in after if action_is("new_message")(e)]
    metadata = json.loads(answer["metadata"])
    assert answer["role"] == "assistant" and metadata["interrupted"] is True and metadata["turn_id"] == turn
    assert "state_update" not in actions(before + after)
    await pet.close()
