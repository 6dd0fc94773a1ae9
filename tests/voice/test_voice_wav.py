"""WavStreamDecoder: WAV arriving in arbitrary pieces becomes PCM16 mono."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from meshkit import start_test_mesh
from voice.voice_helpers import ENGLISH

from server.audio.wav_stream import WavFormatError, WavStreamDecoder


def wav_bytes(samples: np.ndarray, rate: int, channels: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return out.getvalue()


def decode_in_pieces(data: bytes, size: int) -> tuple[bytes, WavStreamDecoder]:
    decoder = WavStreamDecoder()
    return b"".join(decoder.feed(data[i:i + size]) for i in range(0, len(data), size)), decoder


@pytest.mark.parametrize("piece", [1, 7, 44, 45, 4096, 1 << 20])
def test_mono_in_any_pieces(piece: int) -> None:
    samples = (np.arange(3001) % 200 - 100).astype("<i2")
    pcm, decoder = decode_in_pieces(wav_bytes(samples, 22050, 1), piece)
    assert pcm == samples.tobytes() and decoder.sample_rate_hertz == 22050 and decoder.ready


def test_stereo_is_mixed_down_and_extra_chunks_are_skipped() -> None:
    left = np.full(1000, 1000, dtype="<i2")
    right = np.full(1000, 3000, dtype="<i2")
    data = wav_bytes(np.stack([left, right], axis=1).reshape(-1), 16000, 2)
    # insert a LIST chunk (odd size, padded) between fmt and data, as recorders do
    extra = b"LIST" + struct.pack("<I", 5) + b"abcde\0"
    data = data[:36] + extra + data[36:]
    pcm, decoder = decode_in_pieces(data, 333)
    assert decoder.channels == 2 and np.all(np.frombuffer(pcm, "<i2") == 2000) and len(pcm) == 2000


@pytest.mark.parametrize("data, message", [
    (b"OggS" + b"\0" * 40, "not a WAV"),
    (b"RIFF\0\0\0\0WAVEfmt " + struct.pack("<IHHIIHH", 16, 3, 1, 16000, 64000, 4, 32), "only 16-bit PCM"),
    (b"RIFF\0\0\0\0WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 96000, 192000, 2, 16) + b"data\0\0\0\0",
     "96000 Hz"),
])
def test_unsupported_streams_are_refused_precisely(data: bytes, message: str) -> None:
    with pytest.raises(WavFormatError, match=message):
        WavStreamDecoder().feed(data)


@pytest.mark.slow
async def test_a_wav_upload_over_the_bridge_is_transcribed(tmp_path: Path) -> None:
    from peromesh.gateway.v1 import envelope_pb2 as gw
    from server.tts.espeak import EspeakEngine
    from tests.bridge.gateway_client import GatewayClient, action_is

    espeak = EspeakEngine()
    pcm = b"".join([p async for p in espeak.synthesize(ENGLISH[2], "en", "", 22050)])
    stereo = np.repeat(np.frombuffer(pcm, "<i2"), 2)  # a stereo 22.05 kHz recording
    data = wav_bytes(stereo, 22050, 2)
    mesh = await start_test_mesh(tmp_path / "data", "--asr-model", "base", only=("tts", "core", "bridge"))
    try:
        client = await GatewayClient.open(f"ws://{mesh.addresses['bridge']}/ws", "wav-uploader", binary=True)
        pieces = [data[i:i + 8192] for i in range(0, len(data), 8192)]
        for seq, piece in enumerate(pieces):
            await client.send(gw.Envelope(source_id="wav-uploader", target_id="master", stream=gw.DataStream(
                stream_id="upload-1", data=piece, content_type="audio/wav", is_end=seq == len(pieces) - 1)))
        seen = await client.recv_until(action_is("transcription"), wait_s=60)
        while seen[-1].request.params["is_final"] != "true":
            seen += await client.recv_until(action_is("transcription"), wait_s=60)
        final = seen[-1].request.params["text"]
        assert "cup of coffee" in final.lower(), final
        await client.send(gw.Envelope(id="bad-upload", source_id="wav-uploader", target_id="master",
                                      stream=gw.DataStream(stream_id="upload-2", data=b"OggS" + b"\0" * 60,
                                                           content_type="audio/wav")))
        refused = await client.recv_until(lambda e: e.HasField("response") and e.response.request_id == "bad-upload")
        assert refused[-1].response.code == "INVALID_ARGUMENT" and "not a WAV" in refused[-1].response.error_msg
        await client.close()
    finally:
        await mesh.stop()
