"""TtsService: Synthesize (segments in, PCM chunks out, cancel stops everything) and ListVoices.

Three parts per stream: a reader (client messages → segment queue, cancel
handled at once), a speaker task (segments → engine → outbound queue), and the
response generator that drains the outbound queue. Cancel never waits behind
queued segments: it cancels the speaker (which kills the engine process).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from peromesh.tts.v1 import tts_service_pb2 as pb
from peromesh.tts.v1 import tts_service_pb2_grpc as pb_grpc
from server.aio import TaskOwner, cancel_and_wait
from server.rpc.errors import StatusError, status_errors
from server.tts.router import EngineRouter

log = logging.getLogger(__name__)
DEFAULT_RATE_HZ = 24000
MAX_SEGMENT_CHARS = 2000
_END = object()


class TtsServicer(pb_grpc.TtsServiceServicer):
    def __init__(self, router: EngineRouter) -> None:
        self.router = router

    @status_errors()
    async def Synthesize(
        self, request_iterator: AsyncIterator[pb.SynthesizeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SynthesizeResponse]:
        config = await _read_config(request_iterator, context)
        stream = _SynthesisStream(self.router, config)
        try:
            async for response in stream.run(request_iterator):
                yield response
        finally:
            await stream.close()

    @status_errors()
    async def ListVoices(self, request: pb.ListVoicesRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListVoicesResponse:
        """What this server can speak with: the engines' own descriptions of their installed voices
        (read once when the engines were built, so no subprocess runs here)."""
        return pb.ListVoicesResponse(voices=[
            pb.Voice(name=v.name, engine=v.engine, languages=v.languages, display_name=v.display_name,
                     neural=v.neural) for v in self.router.voices(request.languages)])


async def _read_config(requests: AsyncIterator[pb.SynthesizeRequest], context: grpc.aio.ServicerContext) -> Any:
    first = await anext(requests, None)
    if first is None or first.WhichOneof("kind") != "config":
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be `config`")
        raise AssertionError("abort raises")
    config = first.config
    rate = config.sample_rate_hertz or DEFAULT_RATE_HZ
    if not 8000 <= rate <= 48000:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"sample_rate_hertz {rate} not in 8000..48000")
    if config.format not in (pb.PCM_FORMAT_UNSPECIFIED, pb.PCM_FORMAT_S16LE):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "only PCM_FORMAT_S16LE is supported")
    return config


class _SynthesisStream:
    def __init__(self, router: EngineRouter, config: pb.SynthesisConfig) -> None:
        self._router = router
        self._voice = config.voice
        self._rate = config.sample_rate_hertz or DEFAULT_RATE_HZ
        self._segments: asyncio.Queue[pb.TextSegment | None] = asyncio.Queue()
        self._out: asyncio.Queue[pb.SynthesizeResponse | object] = asyncio.Queue()
        self._tasks = TaskOwner("tts")
        self._speaker: asyncio.Task[None] | None = None
        self._chunk_seq = 0

    async def run(self, requests: AsyncIterator[pb.SynthesizeRequest]) -> AsyncIterator[pb.SynthesizeResponse]:
        self._speaker = self._tasks.spawn(self._speak_all(), "speaker")
        self._tasks.spawn(self._read(requests), "reader")
        while (item := await self._out.get()) is not _END:
            if isinstance(item, StatusError):
                raise item
            assert isinstance(item, pb.SynthesizeResponse)
            yield item

    async def close(self) -> None:
        await self._tasks.close()

    async def _read(self, requests: AsyncIterator[pb.SynthesizeRequest]) -> None:
        try:
            async for request in requests:
                kind = request.WhichOneof("kind")
                if kind == "cancel":
                    await self._cancel()
                    return
                if kind != "segment":
                    raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, f"unexpected `{kind}` after config")
                text = request.segment.text.strip()
                if not text or len(text) > MAX_SEGMENT_CHARS:
                    raise StatusError(grpc.StatusCode.INVALID_ARGUMENT,
                                       f"segment {request.segment.seq}: text must be 1..{MAX_SEGMENT_CHARS} chars")
                self._segments.put_nowait(request.segment)
            self._segments.put_nowait(None)
        except StatusError as exc:
            await cancel_and_wait(self._speaker)
            self._out.put_nowait(exc)

    async def _cancel(self) -> None:
        await cancel_and_wait(self._speaker)
        self._out.put_nowait(pb.SynthesizeResponse(end=pb.End(cancelled=True)))
        self._out.put_nowait(_END)

    async def _speak_all(self) -> None:
        while (segment := await self._segments.get()) is not None:
            await self._speak(segment)
        self._out.put_nowait(pb.SynthesizeResponse(end=pb.End(cancelled=False)))
        self._out.put_nowait(_END)

    async def _speak(self, segment: pb.TextSegment) -> None:
        samples, engine = 0, ""
        try:
            async for audio in self._router.speak(segment.text, segment.language, self._voice, self._rate):
                engine = audio.engine
                samples += len(audio.pcm) // 2
                chunk = pb.AudioChunk(segment_seq=segment.seq, seq=self._chunk_seq, pcm=audio.pcm, voice=engine,
                                      voice_name=audio.voice)
                self._chunk_seq += 1
                self._out.put_nowait(pb.SynthesizeResponse(chunk=chunk))
        except Exception as exc:
            log.exception("segment %d failed", segment.seq)
            self._out.put_nowait(StatusError(grpc.StatusCode.INTERNAL, f"segment {segment.seq}: {exc}"))
            return
        done = pb.SegmentDone(segment_seq=segment.seq, duration_ms=samples * 1000 / self._rate, engine=engine)
        self._out.put_nowait(pb.SynthesizeResponse(segment_done=done))

