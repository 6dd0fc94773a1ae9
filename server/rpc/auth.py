"""Bearer-token authentication for gRPC servers and the clients that call them.

Every server demands the mesh token (also on loopback, unless explicitly
opened with --allow-unauthenticated-loopback); health and reflection stay
open so probes and `grpcurl list/describe` work without secrets. A refused call is answered before its request
is decoded: the deny handler reads raw bytes. Clients attach the token once,
on their channel (`open_channel(address, token)` adds `bearer_interceptors`).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from server.rpc.decoding import drain_requests

# Open without a token: health (probes carry no secrets) and reflection (the schema is public, and
# grpcurl looks a method up before it sends the call's headers' token); neither reveals or changes data.
_OPEN_METHODS = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                 "/grpc.reflection.v1.ServerReflection/")


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_matches(expected: str, presented: str) -> bool:
    """Constant-time comparison, so timing does not leak the token."""
    return hmac.compare_digest(expected.encode(), presented.encode())


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying `token`, or none when there is no token."""
    return (("authorization", f"Bearer {token}"),) if token else ()


class BearerAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Rejects calls without `authorization: Bearer <token>` (UNAUTHENTICATED)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        if details.method.startswith(_OPEN_METHODS) or self._authorized(details):
            return await continuation(details)
        return _deny_handler(await continuation(details))

    def _authorized(self, details: grpc.HandlerCallDetails) -> bool:
        for key, value in details.invocation_metadata or ():
            if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                return token_matches(self._token, value[len("Bearer "):])
        return False


def _deny_handler(handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler:
    # A refused request stream is drained (undecoded, bounded) before the status goes out: a
    # client whose messages are still in flight would otherwise get INTERNAL, not UNAUTHENTICATED.
    streaming = handler is not None and handler.request_streaming

    async def deny(request: Any, context: grpc.aio.ServicerContext) -> None:
        if streaming:
            await drain_requests(request)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid 'authorization: Bearer <token>'")

    async def deny_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if streaming:
            await drain_requests(request)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid 'authorization: Bearer <token>'")
        yield  # pragma: no cover - abort raises

    if handler is None:
        return grpc.unary_unary_rpc_method_handler(deny)
    kwargs = {"request_deserializer": None,  # refused unread: bytes are never decoded for a stranger
              "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny_stream, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny_stream, **kwargs)
    return grpc.unary_unary_rpc_method_handler(deny, **kwargs)


def _with_bearer(details: grpc.aio.ClientCallDetails, metadata: tuple[tuple[str, str], ...]) -> Any:
    """`details` with the token added, unless the call already carries an authorization header."""
    current = tuple(details.metadata or ())
    if any(key == "authorization" for key, _ in current):
        return details
    return grpc.aio.ClientCallDetails(details.method, details.timeout, grpc.aio.Metadata(*current, *metadata),
                                      details.credentials, details.wait_for_ready)


class _Bearer:
    def __init__(self, token: str) -> None:
        self._metadata = bearer_metadata(token)


class _BearerUnaryUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_bearer(details, self._metadata), request)


class _BearerUnaryStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_bearer(details, self._metadata), request)


class _BearerStreamUnary(_Bearer, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(_with_bearer(details, self._metadata), request_iterator)


class _BearerStreamStream(_Bearer, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(_with_bearer(details, self._metadata), request_iterator)


def bearer_interceptors(token: str) -> list[grpc.aio.ClientInterceptor]:
    """Client interceptors adding `authorization: Bearer <token>` to every call of a channel.

    One per call shape: grpc files each interceptor under the first shape it implements.
    """
    return [kind(token) for kind in (_BearerUnaryUnary, _BearerUnaryStream, _BearerStreamUnary, _BearerStreamStream)]
