"""One TtsService.Synthesize call per turn, driven from the turn loop.

The turn `say()`s clauses as the model produces them and `finish()`es when
the text is complete; `responses()` yields the TTS server's messages.
`cancel()` sends the contract's `cancel` (so the server kills synthesis at
once) and then cancels the call itself, so a dead TTS server cannot hang a
barge-in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from peromesh.tts.v1 import tts_service_pb2 as tts_pb
from peromesh.tts.v1 import tts_service_pb2_grpc as tts_grpc

_HALF_CLOSE = object()


class SpeechStream:
    def __init__(self, stub: tts_grpc.TtsServiceStub, sample_rate: int, voice: str,
                 metadata: Sequence[tuple[str, str]] = ()) -> None:
        self._requests: asyncio.Queue[tts_pb.SynthesizeRequest | object] = asyncio.Queue()
        self._requests.put_nowait(tts_pb.SynthesizeRequest(config=tts_pb.SynthesisConfig(
            voice=voice, sample_rate_hertz=sample_rate, format=tts_pb.PCM_FORMAT_S16LE)))
        self._call = stub.Synthesize(self._request_iter(), metadata=tuple(metadata))
        self._next_seq = 0
        self._closed = False

    def say(self, text: str) -> int:
        """Queue a clause; returns its segment seq."""
        seq = self._next_seq
        self._next_seq += 1
        self._requests.put_nowait(tts_pb.SynthesizeRequest(segment=tts_pb.TextSegment(seq=seq, text=text)))
        return seq

    def finish(self) -> None:
        """No more text: the server ends the stream after the last segment."""
        if not self._closed:
            self._closed = True
            self._requests.put_nowait(_HALF_CLOSE)

    async def cancel(self) -> None:
        if not self._closed:
            self._closed = True
            self._requests.put_nowait(tts_pb.SynthesizeRequest(cancel=tts_pb.Cancel()))
            self._requests.put_nowait(_HALF_CLOSE)
        await asyncio.sleep(0)  # let the cancel message reach the transport first
        self._call.cancel()

    async def responses(self) -> AsyncIterator[tts_pb.SynthesizeResponse]:
        async for response in self._call:
            yield response

    async def _request_iter(self) -> AsyncIterator[tts_pb.SynthesizeRequest]:
        while (item := await self._requests.get()) is not _HALF_CLOSE:
            assert isinstance(item, tts_pb.SynthesizeRequest)
            yield item

