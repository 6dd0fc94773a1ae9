"""The embedded bridge's port onto a real in-process Hub, without a mesh around it.

`LocalHubPort` types against `server.wire.attach.EmbeddedHub` only; these tests hand it the
hub's own object (through `server.hub.port.embedded_port`) and check the whole contract the
connection relies on: the welcome, routing both ways, the refusal envelope, and the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from bridge.hub_port import HubClosed, LocalHubPort
from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as hpb
from server.hub.hub import Hub
from server.hub.nodes import NodeLink
from server.hub.port import embedded_port

TOKEN = "port-token"


def hello(node_id: str, token: str = TOKEN) -> gw.Envelope:
    return gw.Envelope(id="h1", source_id=node_id, target_id="master",
                       hello=gw.Hello(token=token, platform="test"))


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    hub = Hub(TOKEN)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.close()


async def test_welcome_ping_and_close_go_through_the_port(hub: Hub) -> None:
    port: LocalHubPort[NodeLink] = LocalHubPort(embedded_port(hub))
    welcome = await port.open(hello("tab-1"), "127.0.0.1:5000")
    assert welcome.session_id
    [node] = hub.nodes()
    assert (node.node_id, node.transport, node.peer) == ("tab-1", hpb.TRANSPORT_WEBSOCKET, "127.0.0.1:5000")

    got: list[hpb.AttachResponse] = []
    pump = asyncio.create_task(port.pump(got.append))
    await port.send(gw.Envelope(id="p1", source_id="tab-1", target_id="master",
                                request=gw.ActionRequest(action_name="ping")))
    for _ in range(50):
        if got:
            break
        await asyncio.sleep(0.01)
    assert [(r.envelope.response.request_id, r.envelope.response.data) for r in got] == [("p1", "pong")]

    port.close()
    with pytest.raises(HubClosed) as ended:
        await asyncio.wait_for(pump, 5)
    assert ended.value.code == grpc.StatusCode.CANCELLED
    assert hub.nodes() == []


async def test_a_refused_hello_carries_the_hubs_error_envelope(hub: Hub) -> None:
    port: LocalHubPort[NodeLink] = LocalHubPort(embedded_port(hub))
    with pytest.raises(HubClosed) as refused:
        await port.open(hello("tab-2", token="wrong"), "127.0.0.1:5001")
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    answer = refused.value.answer
    assert answer is not None and answer.target_id == "tab-2"
    assert answer.response.request_id == "h1" and answer.response.code == "UNAUTHENTICATED"
    assert hub.nodes() == []
