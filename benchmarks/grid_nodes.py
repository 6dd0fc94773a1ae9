"""Native Attach nodes for the grid benchmarks: hello → welcome → register → OK."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import grpc

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as pb
from peromesh.hub.v1 import hub_service_pb2_grpc as pb_grpc

SCHEMA = json.dumps({"type": "object", "required": ["text"],
                     "properties": {"text": {"type": "string"}, "level": {"type": "integer", "minimum": 0}}})


def capabilities(i: int) -> list[gw.Capability]:
    """Three capabilities per node, one with a real JSON Schema (checked at registration)."""
    return [gw.Capability(name="desktop.notify", description="Show a notification", params_schema_json=SCHEMA),
            gw.Capability(name="location.get", description="Where the device is", params=["precision"]),
            gw.Capability(name=f"app.action{i % 7}", description="An app action")]


@dataclass
class Outcome:
    ok: bool
    seconds: float
    error: str = ""


class Node:
    def __init__(self, stub: pb_grpc.HubServiceStub, node_id: str, token: str) -> None:
        self.node_id = node_id
        self.token = token
        self.call = stub.Attach()

    async def register(self, index: int, timeout_s: float = 30.0) -> Outcome:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                await self.call.write(pb.AttachRequest(envelope=gw.Envelope(
                    id="h", source_id=self.node_id, target_id="master",
                    hello=gw.Hello(token=self.token, platform="bench", device_name=self.node_id))))
                welcome = await self.call.read()
                if welcome is grpc.aio.EOF or not welcome.envelope.HasField("welcome"):
                    return Outcome(False, time.perf_counter() - started, f"no welcome: {welcome}")
                await self.call.write(pb.AttachRequest(envelope=gw.Envelope(
                    id="r", source_id=self.node_id, target_id="master",
                    register=gw.CapabilityRegister(capabilities=capabilities(index)))))
                answer = await self.call.read()
                ok = answer is not grpc.aio.EOF and answer.envelope.response.status == 0
                return Outcome(ok, time.perf_counter() - started, "" if ok else str(answer))
        except (TimeoutError, grpc.aio.AioRpcError) as exc:
            return Outcome(False, time.perf_counter() - started, repr(exc))

    def close(self) -> None:
        self.call.cancel()
