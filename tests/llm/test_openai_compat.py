"""The OpenAI-compatible provider against a small local streaming server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from server.llm.base import ChatMessage, LlmRequest
from server.llm.openai_compat import OpenAICompatProvider


class FakeOpenAI:
    """Answers POST /v1/chat/completions with SSE chunks (HTTP/1.1, chunked)."""

    def __init__(self, words: list[str], status: int = 200, delay_s: float = 0.0) -> None:
        self.words, self.status, self.delay_s = words, status, delay_s
        self.bodies: list[dict[str, object]] = []
        self.sent = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        self.bodies.append(json.loads(await reader.readexactly(length)))
        if self.status != 200:
            body = b'{"error": "model not loaded"}'
            writer.write(b"HTTP/1.1 %d Err\r\ncontent-length: %d\r\n\r\n%s" % (self.status, len(body), body))
            await writer.drain()
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            for word in self.words:
                event = {"choices": [{"delta": {"content": word}}]}
                await self._chunk(writer, f"data: {json.dumps(event)}\n\n".encode())
                self.sent += 1
                await asyncio.sleep(self.delay_s)
            await self._chunk(writer, b'data: {"choices": [{"delta": {}}]}\n\ndata: [DONE]\n\n')
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()


async def serve(fake: FakeOpenAI) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1"


def request() -> LlmRequest:
    return LlmRequest([ChatMessage("user", "hi")], "s", 32)


async def collect(stream: AsyncIterator[str]) -> list[str]:
    return [d async for d in stream]


async def test_streams_deltas_and_sends_the_conversation() -> None:
    fake = FakeOpenAI(["Hel", "lo", " 你好", "!"])
    server, url = await serve(fake)
    provider = OpenAICompatProvider(url, "tiny", api_key="k")
    try:
        assert await collect(provider.stream(request())) == ["Hel", "lo", " 你好", "!"]
    finally:
        await provider.aclose()
        server.close()
    assert fake.bodies[0]["stream"] is True and fake.bodies[0]["model"] == "tiny"
    assert fake.bodies[0]["messages"] == [{"role": "user", "content": "hi"}]


async def test_error_status_is_reported() -> None:
    server, url = await serve(FakeOpenAI([], status=503))
    provider = OpenAICompatProvider(url, "tiny")
    try:
        with pytest.raises(RuntimeError, match=r"503.*model not loaded"):
            await collect(provider.stream(request()))
    finally:
        await provider.aclose()
        server.close()


async def test_closing_the_stream_stops_reading() -> None:
    fake = FakeOpenAI([f"w{i} " for i in range(200)], delay_s=0.01)
    server, url = await serve(fake)
    provider = OpenAICompatProvider(url, "tiny")
    try:
        stream = provider.stream(request())
        assert await anext(stream) == "w0 "
        await stream.aclose()
        await asyncio.sleep(0.2)
        assert fake.sent < 50
    finally:
        await provider.aclose()
        server.close()
