"""One status-error type and one decorator: StatusError and domain errors become precise statuses,
on unary and streaming methods; anything else stays a visible bug (not swallowed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from server.rpc.errors import StatusError, as_status_error, status_errors


class Missing(LookupError):
    pass


class Aborted(Exception):
    pass


class FakeContext:
    """Records abort() like grpc's context (which raises after sending the status)."""

    def __init__(self) -> None:
        self.status: tuple[grpc.StatusCode, str] | None = None

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.status = (code, details)
        raise Aborted


DOMAIN = {LookupError: grpc.StatusCode.NOT_FOUND}


class Servicer:
    @status_errors(DOMAIN)
    async def Get(self, request: Any, context: Any) -> str:
        if request == "status":
            raise StatusError(grpc.StatusCode.FAILED_PRECONDITION, "not yet")
        if request == "domain":
            raise Missing("no such thing")
        if request == "bug":
            raise ZeroDivisionError("oops")
        return "ok"

    @status_errors()
    async def Watch(self, request: Any, context: Any) -> AsyncIterator[int]:
        yield 1
        raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "bad cursor")


@pytest.mark.parametrize(("request_", "status"), [
    ("status", (grpc.StatusCode.FAILED_PRECONDITION, "not yet")),
    ("domain", (grpc.StatusCode.NOT_FOUND, "no such thing")),  # by the most specific listed base class
])
async def test_errors_become_statuses(request_: str, status: tuple[grpc.StatusCode, str]) -> None:
    context = FakeContext()
    with pytest.raises(Aborted):
        await Servicer().Get(request_, context)
    assert context.status == status


async def test_success_and_bugs_pass_through_untouched() -> None:
    context = FakeContext()
    assert await Servicer().Get("fine", context) == "ok"
    with pytest.raises(ZeroDivisionError):
        await Servicer().Get("bug", context)
    assert context.status is None


async def test_streams_end_with_the_status_after_what_they_yielded() -> None:
    context, seen = FakeContext(), []
    with pytest.raises(Aborted):
        async for item in Servicer().Watch(None, context):
            seen.append(item)
    assert seen == [1] and context.status == (grpc.StatusCode.INVALID_ARGUMENT, "bad cursor")


def test_as_status_error() -> None:
    error = StatusError(grpc.StatusCode.NOT_FOUND, "x")
    assert as_status_error(error) is error and as_status_error(KeyError("k")) is None
    mapped = as_status_error(KeyError("k"), DOMAIN)
    assert mapped is not None and (mapped.code, mapped.message) == (grpc.StatusCode.NOT_FOUND, "k")
