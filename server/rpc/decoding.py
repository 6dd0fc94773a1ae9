"""Request decoding for every server: undecodable bytes are INVALID_ARGUMENT, logged once in a while.

grpc decodes a request with the method's `request_deserializer` before (or,
for streams, while) the servicer runs; when that raises, grpc answers UNKNOWN
and logs a traceback per message, and a servicer reading a stream in a task
of its own may even end the call with OK. `DecodingInterceptor` takes the
decoding into its own hands: grpc passes raw bytes, the interceptor decodes
them, and a failure becomes `StatusError(INVALID_ARGUMENT, ...)` with the
reason. On a request stream the error is raised to whoever iterates it and
remembered, so the call ends with that status even if the servicer swallowed
it (see `_DecodedStream`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from server.rpc.errors import StatusError, abort_with, as_status_error

log = logging.getLogger(__name__)
LOG_INTERVAL_S = 10.0  # at most one "undecodable request" line per method this often
DRAIN_S = 0.5  # how long a request stream's end waits for the client to finish sending
DRAIN_MESSAGES = 256


class RateLimitedLog:
    """One warning per key per interval; the lines in between are counted, not printed."""

    def __init__(self, interval_s: float = LOG_INTERVAL_S) -> None:
        self._interval_s = interval_s
        self._last: dict[str, float] = {}  # keys are registered method names: bounded
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -self._interval_s) < self._interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        more = self._suppressed.pop(key, 0)
        self._last[key] = now
        log.warning("%s%s", message, f" ({more} more since the last report)" if more else "")


class _Decoder:
    """The method's deserializer, raising StatusError(INVALID_ARGUMENT) with the reason."""

    def __init__(self, method: str, deserializer: Callable[[bytes], Any], reports: RateLimitedLog) -> None:
        self._method = method
        self._deserialize = deserializer
        self._reports = reports

    def __call__(self, raw: bytes) -> Any:
        try:
            return self._deserialize(raw)
        except Exception as exc:
            message = f"cannot decode the request message of {self._method}: {exc or type(exc).__name__}"
            self._reports.warning(self._method, f"undecodable request ({len(raw)} bytes): {message}")
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, message) from None


class _DecodedStream:
    """A request stream decoded message by message; the first failure is kept for the call's status.

    `drain()` reads (and drops) what the client is still sending before the call ends: grpc
    answers a client whose messages are still in flight when the status goes out with
    INTERNAL "Internal error from Core" instead of the status (seen on Converse and
    Synthesize). Draining is bounded (DRAIN_S, DRAIN_MESSAGES): a client that keeps sending
    gets its status anyway.
    """

    def __init__(self, raw: AsyncIterator[bytes], decode: _Decoder) -> None:
        self._raw = raw
        self._decode = decode
        self._lock = asyncio.Lock()  # one raw read at a time: the servicer's, or the drain's
        self._ended = False
        self.error: StatusError | None = None

    def __aiter__(self) -> _DecodedStream:
        return self

    async def __anext__(self) -> Any:
        if self.error is not None:
            raise self.error
        if self._ended:
            raise StopAsyncIteration
        async with self._lock:
            raw = await self._raw.__anext__()
        try:
            return self._decode(raw)
        except StatusError as exc:
            self.error = exc
            raise

    async def drain(self) -> None:
        if self._ended:
            return
        self._ended = True
        await drain_requests(self._raw, self._lock)


async def drain_requests(raw: AsyncIterator[Any], lock: asyncio.Lock | None = None) -> None:
    """Read and drop what a client is still sending, bounded (DRAIN_S, DRAIN_MESSAGES), before a
    call's status goes out: see `_DecodedStream` for why (also a refused stranger's stream, auth.py).
    The bound covers waiting for `lock` too: a servicer blocked in a read that holds it (a silent
    peer) must not hold the call's end up."""
    with contextlib.suppress(Exception, TimeoutError):
        async with asyncio.timeout(DRAIN_S):
            async with lock or contextlib.nullcontext():
                for _ in range(DRAIN_MESSAGES):
                    await raw.__anext__()


class _DrainingContext:
    """The servicer's context, except that `abort` lets the client finish sending first."""

    def __init__(self, context: grpc.aio.ServicerContext, stream: _DecodedStream) -> None:
        self._context = context
        self._stream = stream

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        await self._stream.drain()
        await self._context.abort(code, details, trailing_metadata)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


async def _finish(context: grpc.aio.ServicerContext, stream: _DecodedStream | None, exc: Exception | None) -> None:
    """After the servicer: a decode failure (or a StatusError it raised) becomes the call's status."""
    if isinstance(exc, grpc.aio.AbortError):
        raise exc  # the servicer already ended the call with a status of its own
    error = stream.error if stream is not None and stream.error is not None else None
    if error is None and exc is not None:
        error = as_status_error(exc)
    if error is None:
        if exc is not None:
            raise exc
        if stream is not None:
            await stream.drain()
        return
    if stream is not None:
        await stream.drain()
    await abort_with(context, error)


def _unary_request(behavior: Any, decode: _Decoder, streaming_out: bool) -> Any:
    if streaming_out:
        async def unary_stream(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                request = decode(raw)
            except StatusError as exc:
                await abort_with(context, exc)
            async for response in _responses(behavior(request, context)):
                yield response
        return unary_stream

    async def unary_unary(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        try:
            request = decode(raw)
        except StatusError as exc:
            await abort_with(context, exc)
        return await behavior(request, context)
    return unary_unary


def _stream_request(behavior: Any, decode: _Decoder, streaming_out: bool) -> Any:
    if streaming_out:
        async def stream_stream(raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            stream = _DecodedStream(raw, decode)
            try:
                async for response in _responses(behavior(stream, _DrainingContext(context, stream))):
                    yield response
            except Exception as exc:
                await _finish(context, stream, exc)
                return
            await _finish(context, stream, None)
        return stream_stream

    async def stream_unary(raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> Any:
        stream = _DecodedStream(raw, decode)
        try:
            response = await behavior(stream, _DrainingContext(context, stream))
        except Exception as exc:
            await _finish(context, stream, exc)
            raise AssertionError("unreachable: _finish aborts or raises") from exc
        await _finish(context, stream, None)
        return response
    return stream_unary


def _responses(produced: Any) -> AsyncIterator[Any]:
    """A response-streaming behavior's messages: the behavior itself when it is an async iterator
    (no generator of our own in between: each level costs every message a hop on its way to
    gRPC), else a coroutine that writes through `context.write` and yields nothing here."""
    if hasattr(produced, "__aiter__"):
        return produced  # type: ignore[no-any-return]
    return _written(produced)


async def _written(produced: Awaitable[Any]) -> AsyncIterator[Any]:
    await produced
    return
    yield  # pragma: no cover - makes this an async generator that yields nothing


def decoding_handler(method: str, handler: grpc.RpcMethodHandler, reports: RateLimitedLog) -> grpc.RpcMethodHandler:
    """`handler` receiving raw bytes and decoding them itself (see the module docstring)."""
    if handler.request_deserializer is None:
        return handler
    decode = _Decoder(method, handler.request_deserializer, reports)
    out = {"response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_stream_request(handler.stream_stream, decode, True), **out)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_stream_request(handler.stream_unary, decode, False), **out)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_unary_request(handler.unary_stream, decode, True), **out)
    return grpc.unary_unary_rpc_method_handler(_unary_request(handler.unary_unary, decode, False), **out)


class DecodingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps every method handler of a server with `decoding_handler` (built once per method)."""

    def __init__(self) -> None:
        self._reports = RateLimitedLog()
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}  # registered methods only: bounded

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        cached = self._handlers.get(details.method)
        if cached is not None:
            return cached
        handler = await continuation(details)
        if handler is None:
            return None
        wrapped = decoding_handler(details.method, handler, self._reports)
        self._handlers[details.method] = wrapped
        return wrapped
