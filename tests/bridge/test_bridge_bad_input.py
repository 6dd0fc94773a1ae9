"""Bad input at the bridge gets a precise answer and never wedges a connection (issue 9), over
real WebSockets against a real bridge + core; and a failing pump closes its connection at once.

Faults in the pumps are injected deterministically into one live connection (its own objects,
nothing shared is patched), then triggered by the client: the connection must close with 1011
and a reason within seconds (not the 30 s heartbeat timeout), logged once.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import struct
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from meshkit import Conversation, start_test_mesh
from websockets.exceptions import ConnectionClosed

from bridge.connection import GatewayConnection
from peromesh.dialog.v1 import dialog_service_pb2 as dpb
from peromesh.gateway.v1 import envelope_pb2 as gw
from server.app.root import Mesh
from server.audio.wav_stream import WavFormatError, WavStreamDecoder
from server.rpc.auth import bearer_metadata
from server.rpc.channels import open_channel

from .gateway_client import GatewayClient, action_is

TOKEN = "bad-input-token"


@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    """Speech input off: the format checks come first, so bad audio gets INVALID_ARGUMENT anyway."""
    mesh = await start_test_mesh(data_dir, "--token", TOKEN, "--scripted-delay-ms", "2", "--asr-model", "none",
                                 only=("tts", "core", "bridge"))
    yield mesh
    await mesh.stop()


def url(mesh: Mesh) -> str:
    return f"ws://{mesh.addresses['bridge']}/ws"


def audio(stream_id: str, content_type: str, data: bytes = b"\0\0" * 160, rid: str = "a1",
          is_end: bool = False) -> gw.Envelope:
    return gw.Envelope(id=rid, source_id="mic", target_id="master", stream=gw.DataStream(
        stream_id=stream_id, data=data, content_type=content_type, is_end=is_end))


async def answer_to(client: GatewayClient, rid: str, wait_s: float = 10.0) -> gw.ActionResponse:
    got = await client.recv_until(lambda e: e.HasField("response") and e.response.request_id == rid, wait_s)
    return got[-1].response


async def still_serves(client: GatewayClient) -> None:
    """The same connection answers a heartbeat and runs a chat turn."""
    await client.send(gw.Envelope(source_id=client.device, target_id="master", heartbeat=gw.Heartbeat(seq=77)))
    await client.recv_until(lambda e: e.HasField("heartbeat") and e.heartbeat.seq == 77)
    rid = await client.request("chat", text="still there?")
    assert "turn_id" in json.loads((await answer_to(client, rid, 30)).data)
    await client.recv_until(action_is("assistant_final"), 60)


@pytest.mark.parametrize(("content_type", "data", "fragment"), [
    ("audio/pcm;rate=99999999999", b"\0\0" * 160, "sample rate 99999999999 Hz not in 8000..48000"),
    ("audio/pcm;rate=7999", b"\0\0" * 160, "sample rate 7999 Hz not in 8000..48000"),
    ("audio/pcm;rate=" + "9" * 5000, b"\0\0" * 160, "is not a whole number of Hz"),
    ("audio/pcm;rate=16k", b"\0\0" * 160, "rate '16k' is not a whole number of Hz"),
    ("audio/pcm;rate=16000;channels=2", b"\0\0" * 160, "must be mono (channels=1), not channels='2'"),
    ("audio/pcm;rate=16000", b"\0" * 321, "odd chunk of 321 bytes"),
    ("audio/ogg", b"OggS", "unsupported content type 'audio/ogg'"),
    ("audio/pcmx;rate=16000", b"\0\0", "unsupported content type 'audio/pcmx;rate=16000'"),
])
async def test_bad_audio_gets_a_precise_error_and_the_connection_stays_usable(
        mesh: Mesh, content_type: str, data: bytes, fragment: str) -> None:
    client = await GatewayClient.open(url(mesh), "mic", token=TOKEN, binary=True)
    await client.send(audio("utt-1", content_type, data, rid="bad-audio"))
    answer = await answer_to(client, "bad-audio")
    assert answer.status == 1 and answer.code == "INVALID_ARGUMENT", answer
    assert "audio stream 'utt-1'" in answer.error_msg and fragment in answer.error_msg, answer.error_msg
    await still_serves(client)


async def test_odd_pcm_is_refused_with_the_same_check_over_grpc(mesh: Mesh) -> None:
    """One check for both paths: a gRPC client's odd chunk gets the message the bridge gives."""
    client = await GatewayClient.open(url(mesh), "mic", token=TOKEN, binary=True)
    await client.send(audio("u", "audio/pcm;rate=16000", b"\0" * 3, rid="odd"))
    over_gateway = (await answer_to(client, "odd")).error_msg
    async with open_channel(mesh.addresses["core"]) as channel:
        talk = Conversation(channel, bearer_metadata(TOKEN))
        talk.config(session_id="grpc-odd")
        assert (await talk.next()).HasField("session_started")
        talk.send(user_audio=dpb.UserAudio(pcm=b"\0" * 3, sample_rate_hertz=16000))
        error = (await talk.next(10)).error
        talk.send(user_audio=dpb.UserAudio(pcm=b"\0\0", sample_rate_hertz=99999))
        bad_rate = (await talk.next(10)).error
        await talk.close()
    assert error.code == "INVALID_ARGUMENT" and "odd chunk of 3 bytes" in error.message
    assert error.message.split(": ", 1)[1] == over_gateway.split(": ", 1)[1]  # after "user_audio" / "audio stream 'u'"
    assert bad_rate.code == "INVALID_ARGUMENT" and "sample rate 99999 Hz not in 8000..48000" in bad_rate.message


async def test_interrupting_an_unknown_turn_is_answered_with_its_error_not_a_chats(mesh: Mesh) -> None:
    """The dialog's NOT_FOUND for a turn id the client named answers that interrupt; it neither
    answers the chat waiting for its turn nor passes for the start of a turn."""
    client = await GatewayClient.open(url(mesh), "desk", token=TOKEN)
    chat = await client.request("chat", text="hello")
    bogus = await client.request("interrupt", turn_id="nobody#7")
    got = await client.recv_until(action_is("assistant_final"), 60)
    answers = {e.response.request_id: e.response for e in got if e.HasField("response")}
    if bogus not in answers:
        answers[bogus] = await answer_to(client, bogus)
    assert answers[bogus].code == "NOT_FOUND" and "no turn 'nobody#7'" in answers[bogus].error_msg
    turn = json.loads(answers[chat].data)["turn_id"]
    assert turn.startswith(client.welcome.session_id)  # type: ignore[union-attr]
    # interrupting a running turn by its id is answered once the dialog cut it
    rid = await client.request("chat", text="Tell me a long story")
    running = json.loads((await answer_to(client, rid, 30)).data)["turn_id"]
    cut = await client.request("interrupt", turn_id=running)
    answer = await answer_to(client, cut, 30)
    assert answer.status == 0 and answer.data == running


def wav_file(seconds: float, rate: int = 16000) -> bytes:
    samples = (np.sin(np.arange(int(seconds * rate)) * 2 * np.pi * 440 / rate) * 3000).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return out.getvalue()


async def test_a_one_shot_wav_over_64_kib_reaches_the_dialog(mesh: Mesh) -> None:
    """Issue 12: a whole WAV file in one DataStream (PeroCore's `sendStream` default) is decoded,
    not refused for a missing `data` chunk in the first 64 KiB. Speech input is off in this
    mesh, so the dialog's own answer (UNIMPLEMENTED) shows the decoded audio reached it."""
    client = await GatewayClient.open(url(mesh), "uploader", token=TOKEN, binary=True)
    data = wav_file(6.0)
    assert len(data) > 2 * 65536  # well past the 64 KiB header limit, under the 256 KiB frame limit
    await client.send(audio("upload-1", "audio/wav", data, rid="wav", is_end=True))
    got = await client.recv_until(lambda e: action_is("error")(e) or e.HasField("response"), 20)
    assert action_is("error")(got[-1]), got[-1]  # not the bridge's INVALID_ARGUMENT for the upload
    assert got[-1].request.params["code"] == "UNIMPLEMENTED"
    assert "speech input is off" in got[-1].request.params["message"]


# -- a failing pump closes its connection at once -----------------------------------------------
def live(mesh: Mesh, node_id: str) -> GatewayConnection:
    bridge: Any = mesh.bridge
    [connection] = [c for c in bridge.connections if c.node_id == node_id]
    return connection  # type: ignore[no-any-return]


class Injected(RuntimeError):
    """The fault a test plants in one pump."""


def fail(*_: object) -> Any:
    raise Injected("planted by the test")


async def afail(*_: object) -> None:
    raise Injected("planted by the test")


@pytest.mark.parametrize("pump", ["client-reader", "dialog-reader", "hub-pump"])
async def test_any_failure_in_a_pump_closes_the_connection_at_once_logged_once(
        mesh: Mesh, pump: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    client = await GatewayClient.open(url(mesh), "victim", token=TOKEN, binary=True)
    connection = live(mesh, "victim")
    if pump == "dialog-reader":  # the dialog stream opens at the first chat: open it, then plant
        rid = await client.request("chat", text="hi")
        await answer_to(client, rid, 30)
        await client.recv_until(action_is("assistant_final"), 60)
        connection.dialog.translator.translate = fail  # type: ignore[method-assign]
    elif pump == "client-reader":
        connection.dialog.handle = afail  # type: ignore[method-assign]
    else:
        connection.queue.admit = fail  # type: ignore[method-assign]
        connection.queue.push = fail  # type: ignore[method-assign]
    started = time.monotonic()
    if pump == "hub-pump":  # the hub's echo is what the hub pump delivers
        await client.send(gw.Envelope(source_id="victim", target_id="master", heartbeat=gw.Heartbeat(seq=1)))
    else:
        await client.request("chat", text="and now?")
    with pytest.raises(ConnectionClosed) as caught:
        async with asyncio.timeout(10):
            while True:
                await client.ws.recv()
    assert time.monotonic() - started < 5.0  # at once, not at the heartbeat timeout
    close = caught.value.rcvd
    assert close is not None and close.code == 1011, close
    assert close.reason == f"bridge fault: {pump} failed: Injected (logged)"
    faults = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], Injected)]
    assert len(faults) == 1 and faults[0].name == "bridge.connection", [r.getMessage() for r in caplog.records]
    assert grpc  # the mesh still serves everyone else
    other = await GatewayClient.open(url(mesh), "bystander", token=TOKEN)
    await still_serves(other)


# -- the WAV header limit applies to the header -------------------------------------------------
def test_a_whole_wav_in_one_piece_decodes_past_the_header_limit() -> None:
    data = wav_file(6.0)
    pcm = WavStreamDecoder(max_header_bytes=65536).feed(data)
    assert len(pcm) == len(data) - 44  # every sample, in one call


def test_a_chunk_before_data_larger_than_the_header_limit_is_refused_at_once() -> None:
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    head = b"RIFF\0\0\0\0WAVE" + fmt + b"LIST" + struct.pack("<I", 10_000_000)
    with pytest.raises(WavFormatError, match="'LIST' chunk of 10000000 bytes before `data` exceeds the 65536-byte"):
        WavStreamDecoder().feed(head)  # refused on its declared size, before anything is buffered
    decoder = WavStreamDecoder(max_header_bytes=64)
    decoder.feed(b"RIFF\0\0\0\0WAVE" + fmt)
    with pytest.raises(WavFormatError, match="no `data` chunk in the first 64 bytes"):
        decoder.feed(b"junk" + struct.pack("<I", 20) + bytes(20) + b"abcde")  # 69 bytes, still no `data`


@pytest.mark.slow
async def test_a_one_shot_wav_over_64_kib_is_transcribed(data_dir: Path) -> None:
    """The same upload with real speech and Whisper: the whole file, in one frame, is heard."""
    from server.tts.espeak import EspeakEngine

    speech = b"".join([p async for p in EspeakEngine().synthesize(
        "I would like a cup of coffee with milk and no sugar.", "en", "", 16000)])
    samples = np.concatenate([np.frombuffer(speech, "<i2"), np.zeros(16000, "<i2")])  # and a second of silence
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())
    data = out.getvalue()
    assert 65536 < len(data) < 256 * 1024
    mesh = await start_test_mesh(data_dir, "--token", TOKEN, "--asr-model", "base", only=("tts", "core", "bridge"))
    try:
        client = await GatewayClient.open(url(mesh), "uploader", token=TOKEN, binary=True)
        await client.send(audio("upload-1", "audio/wav", data, rid="wav", is_end=True))
        final = ""
        while not final:
            got = await client.recv_until(lambda e: action_is("transcription")(e) or e.HasField("response"), 90)
            assert not got[-1].HasField("response"), got[-1]  # refused
            if got[-1].request.params["is_final"] == "true":
                final = got[-1].request.params["text"]
        assert "cup of coffee" in final.lower(), final
    finally:
        await mesh.stop()
