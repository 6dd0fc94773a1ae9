"""TtsService with the real espeak-ng: streaming, contract errors, cancel reaps the process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from meshkit import start_test_mesh

from peromesh.tts.v1 import tts_service_pb2 as pb
from peromesh.tts.v1 import tts_service_pb2_grpc as pb_grpc
from server.app.root import Mesh
from server.rpc.channels import open_channel
from server.tts.router import EngineRouter
from server.tts.wiring import RunningTts


@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    mesh = await start_test_mesh(data_dir, only=["tts"])
    yield mesh
    await mesh.stop()


def config(rate: int = 24000) -> pb.SynthesizeRequest:
    return pb.SynthesizeRequest(config=pb.SynthesisConfig(sample_rate_hertz=rate))


def segment(seq: int, text: str) -> pb.SynthesizeRequest:
    return pb.SynthesizeRequest(segment=pb.TextSegment(seq=seq, text=text))


async def test_segments_stream_in_order_at_the_requested_rate(mesh: Mesh) -> None:
    async with open_channel(mesh.addresses["tts"], mesh.token) as channel:
        stub = pb_grpc.TtsServiceStub(channel)

        async def requests() -> AsyncIterator[pb.SynthesizeRequest]:
            yield config(16000)
            yield segment(0, "Hello there.")
            yield segment(1, "This is the second clause, a little longer than the first.")

        responses = [r async for r in stub.Synthesize(requests())]
    chunks = [r.chunk for r in responses if r.HasField("chunk")]
    done = [r.segment_done for r in responses if r.HasField("segment_done")]
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert [d.segment_seq for d in done] == [0, 1] and all(d.engine == "espeak-ng" for d in done)
    first = sum(len(c.pcm) for c in chunks if c.segment_seq == 0)
    second = sum(len(c.pcm) for c in chunks if c.segment_seq == 1)
    assert second > 2 * first > 0
    assert abs(done[0].duration_ms - first / 2 / 16000 * 1000) < 1
    assert responses[-1].HasField("end") and not responses[-1].end.cancelled


@pytest.mark.parametrize("first, fragment", [
    (segment(0, "no config"), "first message must be `config`"),
    (config(1000), "sample_rate_hertz 1000"),
])
async def test_bad_config_is_rejected(mesh: Mesh, first: pb.SynthesizeRequest, fragment: str) -> None:
    async with open_channel(mesh.addresses["tts"], mesh.token) as channel:
        stub = pb_grpc.TtsServiceStub(channel)

        async def requests() -> AsyncIterator[pb.SynthesizeRequest]:
            yield first

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            _ = [r async for r in stub.Synthesize(requests())]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in str(caught.value.details())


async def test_empty_segment_is_rejected(mesh: Mesh) -> None:
    async with open_channel(mesh.addresses["tts"], mesh.token) as channel:
        stub = pb_grpc.TtsServiceStub(channel)

        async def requests() -> AsyncIterator[pb.SynthesizeRequest]:
            yield config()
            yield segment(0, "  ")

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            _ = [r async for r in stub.Synthesize(requests())]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "segment 0" in str(caught.value.details())


async def test_cancel_stops_at_once_and_reaps_espeak(mesh: Mesh) -> None:
    from server.tts.espeak import EspeakEngine

    engine = next(e for e in _router(mesh).engines if isinstance(e, EspeakEngine))
    queue: asyncio.Queue[pb.SynthesizeRequest | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[pb.SynthesizeRequest]:
        while (item := await queue.get()) is not None:
            yield item

    long_text = " ".join(["This sentence keeps the speech engine busy for a good while."] * 30)
    async with open_channel(mesh.addresses["tts"], mesh.token) as channel:
        call = pb_grpc.TtsServiceStub(channel).Synthesize(requests())
        queue.put_nowait(config())
        queue.put_nowait(segment(0, long_text))
        queue.put_nowait(segment(1, "never spoken"))
        first = await call.read()
        assert first.HasField("chunk")
        pid = engine.last_pid
        assert pid is not None
        queue.put_nowait(pb.SynthesizeRequest(cancel=pb.Cancel()))
        rest = []
        while (response := await call.read()) is not grpc.aio.EOF:
            rest.append(response)
        queue.put_nowait(None)
    assert rest[-1].HasField("end") and rest[-1].end.cancelled
    assert not any(r.HasField("segment_done") for r in rest), "the cut segment must not complete"
    assert not any(r.HasField("chunk") and r.chunk.segment_seq == 1 for r in rest)
    assert not os.path.exists(f"/proc/{pid}"), "espeak-ng must be killed and reaped (no zombie)"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def _router(mesh: Mesh) -> EngineRouter:
    running = mesh.tts
    assert isinstance(running, RunningTts)
    return running.router
