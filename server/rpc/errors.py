"""The one error type that carries a gRPC status, and the one decorator that answers with it.

Domain code and servicers raise `StatusError(code, message)` wherever a client
must get a precise status; every servicer method is wrapped in
`@status_errors()` (optionally with a mapping of domain exception types to
codes, so domain modules need not import grpc), which turns the error into
`context.abort(code, message)`. Anything else escaping a method is left to
grpc (UNKNOWN, logged with its traceback): a bug must stay visible.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, NoReturn, TypeVar, cast

import grpc

F = TypeVar("F", bound=Callable[..., Any])
DomainErrors = Mapping[type[BaseException], grpc.StatusCode]


class StatusError(Exception):
    """A refused or failed request: the gRPC status a client gets and the precise message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"StatusError({self.code.name}, {self.message!r})"


def as_status_error(exc: BaseException, domain: DomainErrors | None = None) -> StatusError | None:
    """`exc` as a StatusError: itself, or mapped by its (most specific listed) domain type."""
    if isinstance(exc, StatusError):
        return exc
    for kind in type(exc).__mro__:
        if domain and kind in domain:
            return StatusError(domain[kind], str(exc).strip("'\""))
    return None


async def abort_with(context: grpc.aio.ServicerContext, error: StatusError) -> NoReturn:
    """End the call with `error`'s status (abort raises; this says so to the type checker)."""
    await context.abort(error.code, error.message)
    raise AssertionError("unreachable: abort raises")


def status_errors(domain: DomainErrors | None = None) -> Callable[[F], F]:
    """Decorate a servicer method (unary or streaming) so StatusError and `domain` errors become statuses.

    The context is the method's last positional argument, as grpc calls it:
    `(self, request_or_iterator, context)`, or `(request_or_iterator, context)`
    for a bare handler.
    """

    def decorate(fn: F) -> F:
        if inspect.isasyncgenfunction(fn):
            @functools.wraps(fn)
            async def stream(*args: Any) -> AsyncIterator[Any]:
                try:
                    async for item in fn(*args):
                        yield item
                except Exception as exc:
                    if (error := as_status_error(exc, domain)) is None:
                        raise
                    await abort_with(args[-1], error)

            return cast(F, stream)

        @functools.wraps(fn)
        async def unary(*args: Any) -> Any:
            try:
                return await fn(*args)
            except Exception as exc:
                if (error := as_status_error(exc, domain)) is None:
                    raise
                await abort_with(args[-1], error)

        return cast(F, unary)

    return decorate
