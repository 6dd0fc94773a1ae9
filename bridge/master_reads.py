"""The shape of a gateway action the bridge answers itself with one read from a service.

`history:list` (bridge/history_reads.py) and `voices:list` (bridge/voice_list.py) are
requests to master that the bridge answers from a gRPC read of its own, not the hub:
check the params (a ValueError answers INVALID_ARGUMENT), refuse while MAX_READS reads of
this connection are running (RESOURCE_EXHAUSTED), run the read as a task of the
connection (never in the client reader, so a slow service cannot hold up an interrupt
behind it), and answer its response as JSON data or its gRPC failure as the code's name.
This class holds that shape once; each action keeps only its params, its RPC and the JSON
of its answer.

Cancellation: closing the connection cancels its reads (the spawn callable is the
connection's TaskOwner), which cancels their gRPC calls; the running count is given back
in a `finally`, so a cancelled read frees its slot.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, Generic, TypeVar

import grpc

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.wire import envelopes as env

from .outbound import Outbound

Spawn = Callable[[Coroutine[Any, Any, None], str], object]
RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


class MasterRead(ABC, Generic[RequestT, ResponseT]):
    """One bridge-answered read action: its name, its limit, and the steps that are its own."""

    ACTION: ClassVar[str]
    MAX_READS: ClassVar[int]
    TASK_NAME: ClassVar[str]
    BUSY: ClassVar[str]  # the RESOURCE_EXHAUSTED message while MAX_READS reads are running

    def __init__(self, metadata: tuple[tuple[str, str], ...], out: Callable[[Outbound], None],
                 spawn: Spawn) -> None:
        self._metadata = metadata
        self._out = out
        self._spawn = spawn
        self._running = 0

    def wants(self, envelope: gw.Envelope) -> bool:
        return (envelope.target_id in (env.MASTER, "") and envelope.HasField("request")
                and envelope.request.action_name == self.ACTION)

    def handle(self, envelope: gw.Envelope) -> None:
        """Check the request and start its read; the answer comes when the service has answered."""
        try:
            request = self._request(envelope.request.params)
        except ValueError as exc:
            self._error(envelope, "INVALID_ARGUMENT", str(exc))
            return
        refusal = self._refusal()
        if refusal is not None:
            self._error(envelope, *refusal)
            return
        if self._running >= self.MAX_READS:
            self._error(envelope, "RESOURCE_EXHAUSTED", self.BUSY)
            return
        self._running += 1
        self._spawn(self._read(envelope, request), self.TASK_NAME)

    async def _read(self, envelope: gw.Envelope, request: RequestT) -> None:
        try:
            response = await self._call(request)
        except grpc.aio.AioRpcError as exc:
            self._error(envelope, exc.code().name, f"{self.ACTION}: {exc.details() or exc.code().name}")
            return
        finally:
            self._running -= 1
        answer = env.ok(envelope, json.dumps(self._data(response), ensure_ascii=False))
        self._out(Outbound(answer, size=answer.ByteSize()))

    def _error(self, envelope: gw.Envelope, code: str, message: str) -> None:
        self._out(Outbound(env.error(envelope.id, self._error_target(envelope), code, message,
                                     trace_id=envelope.trace_id)))

    def _refusal(self) -> tuple[str, str] | None:
        """A (code, message) that refuses every request now (no service to ask), or None."""
        return None

    def _error_target(self, envelope: gw.Envelope) -> str:
        return envelope.source_id

    @abstractmethod
    def _request(self, params: Any) -> RequestT:
        """The RPC's request from the action's params; ValueError with the message for a bad one."""

    @abstractmethod
    async def _call(self, request: RequestT) -> ResponseT:
        """The read itself (with self._metadata and the action's deadline)."""

    @abstractmethod
    def _data(self, response: ResponseT) -> dict[str, Any]:
        """The answer's JSON data."""
