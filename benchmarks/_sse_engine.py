"""A FastAPI + Server-Sent Events dialog engine: the baseline the mesh's wire overhead is compared with.

Run as `python benchmarks/_sse_engine.py PORT DELAY_MS`; prints `ready` once uvicorn listens.
This is how a typical Python dialog engine streams an answer: one HTTP request per turn
(`POST /turns` with `{"text": ...}`), answered by a `text/event-stream` of `state`, `delta`
(one per token of the same scripted provider the mesh runs, `server.llm.scripted`, at the same
per-token delay), `metrics` and a last `state`. SSE is one-way, so an interrupt is a second request
(`POST /turns/{id}/interrupt`), after which the stream reports and ends, as a Converse turn does.

`metrics.t_first_delta_ms` is the engine's own time from the request handler starting (body
parsed) to the provider yielding its first token, the twin of the mesh's TurnMetrics field: the
client subtracts it from what it observed, so what is left is what HTTP, FastAPI and SSE cost.
Plain `uvicorn` (asyncio loop, h11), the same event loop the mesh runs on.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import sys
import time
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from server.llm.base import ChatMessage, LlmRequest
from server.llm.scripted import ScriptedProvider

MAX_LIVE_TURNS = 64  # interrupt flags of streams still open: one client runs one turn at a time


class TurnRequest(BaseModel):
    text: str


def _event(kind: str, payload: dict[str, object]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def build_app(delay_ms: float) -> FastAPI:
    app = FastAPI()
    provider = ScriptedProvider(delay_ms=delay_ms)
    interrupts: dict[str, asyncio.Event] = {}
    numbers = itertools.count(1)

    async def answer(turn_id: str, text: str, started: float, stop: asyncio.Event) -> AsyncIterator[bytes]:
        yield _event("state", {"turn_id": turn_id, "state": "THINKING"})
        t_first_delta_ms, tokens = 0.0, 0
        stream = provider.stream(LlmRequest([ChatMessage("user", text)], "sse"))
        try:
            async for token in stream:
                if not tokens:
                    t_first_delta_ms = (time.perf_counter() - started) * 1000
                tokens += 1
                yield _event("delta", {"turn_id": turn_id, "text": token})
                if stop.is_set():
                    break
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            interrupts.pop(turn_id, None)
        yield _event("metrics", {"turn_id": turn_id, "t_first_delta_ms": t_first_delta_ms, "tokens": tokens})
        yield _event("state", {"turn_id": turn_id, "state": "INTERRUPTED" if stop.is_set() else "IDLE"})

    @app.post("/turns")
    async def start(body: TurnRequest) -> StreamingResponse:
        started = time.perf_counter()
        turn_id = f"sse-{next(numbers)}"
        stop = interrupts[turn_id] = asyncio.Event()
        while len(interrupts) > MAX_LIVE_TURNS:
            interrupts.pop(next(iter(interrupts)))
        return StreamingResponse(answer(turn_id, body.text, started, stop), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Turn-Id": turn_id})

    @app.post("/turns/{turn_id}/interrupt", status_code=204)
    async def interrupt(turn_id: str) -> Response:
        if (stop := interrupts.get(turn_id)) is not None:
            stop.set()
        return Response(status_code=204)

    return app


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        print("ready", flush=True)  # listening: the benchmark may connect


async def main(port: int, delay_ms: float) -> None:
    config = uvicorn.Config(build_app(delay_ms), host="127.0.0.1", port=port, log_level="warning",
                            loop="asyncio", http="h11", lifespan="off", access_log=False)
    await _Server(config).serve()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
