"""A Gateway protocol client for tests and benchmarks (websockets + the codec)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bridge import codec
from peromesh.gateway.v1 import envelope_pb2 as gw

_ids = itertools.count(1)


class GatewayClient:
    """One device: `await GatewayClient.open(url, device)`; then send/recv envelopes."""

    def __init__(self, ws: ClientConnection, device: str, binary: bool) -> None:
        self.ws = ws
        self.device = device
        self.binary = binary
        self.welcome: gw.Welcome | None = None
        self.frame_types: list[type] = []  # bytes or str, per received frame
        # periodic mesh broadcasts (the monitor's samples) that tests about something else skip
        self.ignore: set[str] = {"system_stats"}

    @classmethod
    async def open(cls, url: str, device: str, token: str = "test-token", binary: bool = False,
                   hello: bool = True, protocol_version: int = 1, **connect_args: Any) -> GatewayClient:
        """A connected device; `protocol_version` 1 speaks PeroMesh (as the SDK does), 0 plays a PeroLink v1
        (PeroCore) client, which gets WAV speech and PeroCore's event names."""
        ws = await connect(url, max_size=None, compression=None, **connect_args)
        client = cls(ws, device, binary)
        if hello:
            answer = await client.hello(token, protocol_version)
            assert answer.HasField("welcome"), answer
            client.welcome = answer.welcome
        return client

    async def hello(self, token: str, protocol_version: int = 1) -> gw.Envelope:
        await self.send(gw.Envelope(id="hello", source_id=self.device, target_id="master",
                                    hello=gw.Hello(token=token, platform="test", device_name=self.device,
                                                   protocol_version=protocol_version)))
        return await self.recv()

    async def send(self, envelope: gw.Envelope) -> None:
        await self.ws.send(codec.encode(envelope, self.binary))

    async def request(self, action: str, target: str = "master", **params: str) -> str:
        rid = f"{self.device}-{next(_ids)}"
        await self.send(gw.Envelope(id=rid, source_id=self.device, target_id=target,
                                    request=gw.ActionRequest(action_name=action, params=params)))
        return rid

    async def recv(self, wait_s: float = 10.0) -> gw.Envelope:
        """The next envelope (skipping ignored broadcasts)."""
        async with asyncio.timeout(wait_s):
            while True:
                frame = await self.ws.recv()
                envelope = codec.decode(frame, 1 << 30)
                if not (envelope.HasField("request") and envelope.request.action_name in self.ignore):
                    self.frame_types.append(type(frame))
                    return envelope

    async def recv_until(self, predicate: Any, wait_s: float = 20.0) -> list[gw.Envelope]:
        """Everything received up to and including the first envelope matching `predicate`."""
        seen: list[gw.Envelope] = []
        async with asyncio.timeout(wait_s):
            while True:
                seen.append(await self.recv(wait_s))
                if predicate(seen[-1]):
                    return seen

    async def close(self) -> None:
        await self.ws.close()


def action_is(name: str) -> Any:
    return lambda e: e.HasField("request") and e.request.action_name == name


def actions(envelopes: list[gw.Envelope]) -> list[str]:
    return [e.request.action_name for e in envelopes if e.HasField("request")]
