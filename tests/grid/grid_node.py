"""A native gRPC node for grid tests: attaches, registers capabilities, answers invocations.

Each node runs a reader that answers requests for its capabilities with a
handler's result (or never, for a handler returning None: a hung device),
and keeps every other envelope it receives (broadcasts, responses) for the
test to look at.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import grpc

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as pb
from peromesh.hub.v1 import hub_service_pb2_grpc as pb_grpc

TOKEN = "test-token"
Handler = Callable[[dict[str, str]], Any]  # params → result (JSON-able), None: never answer
NEVER = object()


def cap(name: str, description: str = "", schema: dict[str, Any] | str | None = None,
        dangerous: bool = False) -> gw.Capability:
    text = schema if isinstance(schema, str) else json.dumps(schema) if schema is not None else ""
    return gw.Capability(name=name, description=description, params_schema_json=text, dangerous=dangerous)


class GridNode:
    def __init__(self, stub: pb_grpc.HubServiceStub, node_id: str, platform: str) -> None:
        self.node_id = node_id
        self.platform = platform
        self.call = stub.Attach()
        self.handlers: dict[str, Handler] = {}
        self.requests: list[gw.Envelope] = []  # capability requests received
        self.inbox: asyncio.Queue[gw.Envelope] = asyncio.Queue()  # everything else
        self._reader: asyncio.Task[None] | None = None
        self._seq = 0

    async def attach(self, **hello: Any) -> gw.Welcome:
        await self._send(gw.Envelope(id="hello", source_id=self.node_id, target_id="master",
                                     hello=gw.Hello(token=TOKEN, platform=self.platform, **hello)))
        first = await asyncio.wait_for(self.call.read(), 5)
        assert first is not grpc.aio.EOF and first.envelope.HasField("welcome"), first
        self._reader = asyncio.create_task(self._read())
        return first.envelope.welcome

    async def register(self, *capabilities: gw.Capability, rid: str = "reg") -> gw.ActionResponse:
        await self._send(gw.Envelope(id=rid, source_id=self.node_id, target_id="master",
                                     register=gw.CapabilityRegister(capabilities=list(capabilities))))
        return (await self.response(rid)).response

    async def request(self, action: str, rid: str, target: str = "master", **params: str) -> gw.ActionResponse:
        await self._send(gw.Envelope(id=rid, source_id=self.node_id, target_id=target,
                                     request=gw.ActionRequest(action_name=action, params=params)))
        return (await self.response(rid)).response

    async def response(self, rid: str, wait_s: float = 10.0) -> gw.Envelope:
        return await self.next(lambda e: e.HasField("response") and e.response.request_id == rid, wait_s)

    async def next(self, predicate: Callable[[gw.Envelope], bool], wait_s: float = 10.0) -> gw.Envelope:
        """The next envelope matching `predicate` (others before it are dropped)."""
        async with asyncio.timeout(wait_s):
            while True:
                envelope = await self.inbox.get()
                if predicate(envelope):
                    return envelope

    async def action(self, name: str, wait_s: float = 10.0) -> dict[str, str]:
        envelope = await self.next(lambda e: e.HasField("request") and e.request.action_name == name, wait_s)
        return dict(envelope.request.params)

    async def answer(self, request: gw.Envelope, data: str) -> None:
        """Answer a capability request held back by a NEVER handler."""
        await self._send(gw.Envelope(id=f"{self.node_id}-late", source_id=self.node_id, target_id=request.source_id,
                                     response=gw.ActionResponse(request_id=request.id, status=0, data=data)))

    async def heartbeat(self) -> None:
        self._seq += 1
        await self._send(gw.Envelope(source_id=self.node_id, heartbeat=gw.Heartbeat(seq=self._seq)))

    async def close(self) -> None:
        self.call.cancel()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _send(self, envelope: gw.Envelope) -> None:
        await self.call.write(pb.AttachRequest(envelope=envelope))

    async def _read(self) -> None:
        while (item := await self.call.read()) is not grpc.aio.EOF:
            envelope = item.envelope
            handler = self.handlers.get(envelope.request.action_name) if envelope.HasField("request") else None
            if handler is None:
                self.inbox.put_nowait(envelope)
                continue
            self.requests.append(envelope)
            result = handler(dict(envelope.request.params))
            if result is NEVER:
                continue
            if isinstance(result, gw.ActionResponse):
                answer = result
                answer.request_id = envelope.id
            else:
                answer = gw.ActionResponse(request_id=envelope.id, status=0,
                                           data=result if isinstance(result, str) else json.dumps(result))
            await self._send(gw.Envelope(id=f"{self.node_id}-r{len(self.requests)}", source_id=self.node_id,
                                         target_id=envelope.source_id, response=answer))
