"""The grid through the bridge: a WebSocket client's capabilities, next to a native node's.

A real mesh (core + bridge, scripted LLM); the browser-like client speaks the
Gateway protocol over /ws, the native node Attaches over gRPC. Checks that a
WebSocket node's register is screened like any other (precise rejection),
that its tools appear/disappear with its socket, that a native client's
Invoke is routed to it and answered, and that a task:add from it reaches the
native node as task:update.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshkit import start_test_mesh

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as pb
from peromesh.hub.v1 import hub_service_pb2_grpc as pb_grpc
from server.app.root import Mesh
from server.rpc.channels import open_channel
from tests.bridge.gateway_client import GatewayClient, action_is

from .conftest import eventually
from .grid_node import GridNode, cap


@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "1", only=["core", "bridge"])
    yield mesh
    await mesh.stop()


async def offered(stub: pb_grpc.HubServiceStub) -> list[tuple[str, str]]:
    listed = await stub.ListCapabilities(pb.ListCapabilitiesRequest())
    return [(c.tool_name, c.node_id) for c in listed.capabilities]


async def test_websocket_node_capabilities_are_screened_routed_and_dropped(mesh: Mesh) -> None:
    browser = await GatewayClient.open(f"ws://{mesh.addresses['bridge']}/ws", "browser-1")
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        stub = pb_grpc.HubServiceStub(channel)
        native = GridNode(stub, "qq-bot", "qq")
        await native.attach()
        try:
            await browser.send(gw.Envelope(id="reg-1", source_id="browser-1", target_id="master",
                                           register=gw.CapabilityRegister(capabilities=[
                                               cap("ui.display", "Show a card", {"type": "object",
                                                                                 "required": ["title"]}),
                                               cap("ui.broken", schema={"type": "object", "minProperties": -1}),
                                           ])))
            [answer] = [e for e in await browser.recv_until(lambda e: e.HasField("response")) if
                        e.HasField("response")]
            assert (answer.response.request_id, answer.response.code) == ("reg-1", "INVALID_ARGUMENT")
            assert answer.response.error_msg.startswith(
                "capability 'ui.broken' rejected: params_schema_json is not a valid JSON Schema: at /minProperties: "
                "-1 is less than the minimum of 0")
            assert await offered(stub) == [("test.ui.display", "browser-1")]  # the client's platform is "test"

            invoke = stub.Invoke(pb.InvokeRequest(name="ui.display", arguments_json='{"title": "Hello"}',
                                                  preferred_node_id="qq-bot", timeout_ms=5000))
            [request] = [e for e in await browser.recv_until(action_is("ui.display")) if e.HasField("request")]
            assert json.loads(request.request.params["args_json"]) == {"title": "Hello"}
            await browser.send(gw.Envelope(id="ans-1", source_id="browser-1", target_id=request.source_id,
                                           response=gw.ActionResponse(request_id=request.id, status=0,
                                                                      data='{"shown": true}')))
            result = await invoke
            assert (result.node_id, json.loads(result.result)) == ("browser-1", {"shown": True})

            await browser.request("task:add", title="from the browser")
            update = await native.action("task:update")
            assert json.loads(update["task"])["title"] == "from the browser"

            await browser.close()
            await eventually(lambda: _no_browser(mesh))
            assert await offered(stub) == []
        finally:
            await native.close()


def _no_browser(mesh: Mesh) -> bool:
    return mesh.core.hub.node("browser-1") is None
