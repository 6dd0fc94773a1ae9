"""HubService.Attach with native gRPC clients: auth, welcome, heartbeats, routing, liveness."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as pb
from server.hub.hub import HubConfig
from server.hub.nodes import NodeChange, NodeInfo

from .hub_harness import TOKEN, HubHarness


def request(source: str, target: str, action: str, rid: str, **params: str) -> gw.Envelope:
    return gw.Envelope(id=rid, source_id=source, target_id=target,
                       request=gw.ActionRequest(action_name=action, params=params))


async def test_valid_hello_gets_welcome_and_is_listed(harness: HubHarness) -> None:
    node = await harness.node("desk")
    welcome = await node.hello(device_name="Desk PC", capabilities=["desktop.notify"])
    assert welcome.welcome.protocol_version == 1
    assert welcome.welcome.node_id == "desk" and not welcome.welcome.resumed
    assert len(welcome.welcome.session_id) == 32 and welcome.welcome.heartbeat_interval_ms == 200
    listed = await harness.stub.ListNodes(pb.ListNodesRequest())
    [info] = listed.nodes
    assert (info.node_id, info.device_name, info.transport) == ("desk", "Desk PC", pb.TRANSPORT_GRPC)
    assert [c.name for c in info.capabilities] == ["desktop.notify"]


@pytest.mark.parametrize(("token", "node_id", "code", "message"), [
    ("wrong", "desk", grpc.StatusCode.UNAUTHENTICATED, "hello.token is not the mesh access token"),
    ("", "desk", grpc.StatusCode.UNAUTHENTICATED, "hello.token is missing"),
    ("test-token", "", grpc.StatusCode.INVALID_ARGUMENT, "source_id must be the device id"),
    ("test-token", "broadcast", grpc.StatusCode.INVALID_ARGUMENT, "source_id must be the device id"),
])
async def test_bad_hello_gets_precise_error_and_stream_ends(
        harness: HubHarness, token: str, node_id: str, code: grpc.StatusCode, message: str) -> None:
    node = await harness.node(node_id)
    answer = await node.hello(token=token)
    assert answer.response.status == 1 and answer.response.request_id == "h1"
    assert answer.response.code == code.name and message in answer.response.error_msg
    assert await node.status() == code
    assert harness.hub.nodes() == []


async def test_first_envelope_must_be_hello(harness: HubHarness) -> None:
    node = await harness.node("desk")
    await node.send(gw.Envelope(id="x", source_id="desk", heartbeat=gw.Heartbeat(seq=1)))
    answer = await node.recv()
    assert "first envelope must be a hello" in answer.response.error_msg
    assert "got heartbeat" in answer.response.error_msg
    assert await node.status() == grpc.StatusCode.UNAUTHENTICATED


async def test_heartbeat_is_echoed(harness: HubHarness) -> None:
    node = await harness.attached("desk")
    await node.send(gw.Envelope(source_id="desk", heartbeat=gw.Heartbeat(seq=41)))
    echo = await node.recv()
    assert echo.heartbeat.seq == 41 and echo.source_id == "master"


async def test_broadcast_reaches_every_other_node(harness: HubHarness) -> None:
    a, b, c = [await harness.attached(n) for n in ("a", "b", "c")]
    await a.send(request("a", "broadcast", "ping", "r1", n="1"))
    for other in (b, c):
        got = await other.recv_request()
        assert (got.request.action_name, got.source_id, dict(got.request.params)) == ("ping", "a", {"n": "1"})
    await a.send(gw.Envelope(source_id="a", heartbeat=gw.Heartbeat(seq=1)))
    assert (await a.recv()).HasField("heartbeat")  # a itself got nothing before its echo


async def test_unicast_request_and_response_correlate(harness: HubHarness) -> None:
    a, b, c = [await harness.attached(n) for n in ("a", "b", "c")]
    await a.send(request("a", "b", "get_time", "q-7"))
    got = await b.recv_request()
    assert got.request.action_name == "get_time" and got.source_id == "a"
    # b answers to "master": the hub still routes it to the requester by request_id
    await b.send(gw.Envelope(id="b1", source_id="b", target_id="master",
                             response=gw.ActionResponse(request_id="q-7", status=0, data="12:00")))
    answer = await a.recv_request()
    assert (answer.response.request_id, answer.response.data, answer.source_id) == ("q-7", "12:00", "b")
    await c.send(gw.Envelope(source_id="c", heartbeat=gw.Heartbeat(seq=2)))
    assert (await c.recv()).HasField("heartbeat")  # c saw neither request nor response


async def test_source_id_cannot_be_spoofed(harness: HubHarness) -> None:
    a, b = await harness.attached("a"), await harness.attached("b")
    await a.send(request("b", "b", "hi", "r1"))
    assert (await b.recv_request()).source_id == "a"


async def test_unknown_target_and_unknown_master_action_are_errors(harness: HubHarness) -> None:
    a = await harness.attached("a")
    await a.send(request("a", "ghost", "hi", "r1"))
    answer = await a.recv_request()
    assert answer.response.code == "NOT_FOUND" and "'ghost' is not attached" in answer.response.error_msg
    await a.send(request("a", "master", "nope", "r2"))
    answer = await a.recv_request()
    assert answer.response.code == "UNIMPLEMENTED" and "'nope'" in answer.response.error_msg


async def test_master_action_handler_answers(harness: HubHarness) -> None:
    seen: list[str] = []

    async def add_task(node: NodeInfo, envelope: gw.Envelope) -> str:
        seen.append(f"{node.node_id}:{envelope.request.params['title']}")
        return '{"id": 1}'

    harness.hub.on_action("task:add", add_task)
    a = await harness.attached("a")
    await a.send(request("a", "master", "task:add", "t1", title="milk"))
    answer = await a.recv_request()
    assert (answer.response.request_id, answer.response.status, answer.response.data) == ("t1", 0, '{"id": 1}')
    assert seen == ["a:milk"]


async def test_in_process_broadcast_send_and_request(harness: HubHarness) -> None:
    a, b = await harness.attached("a"), await harness.attached("b")
    assert harness.hub.broadcast("reminder_trigger", {"content": "eat"}) == 2
    for node in (a, b):
        got = await node.recv_request()
        assert got.target_id == "broadcast" and got.request.params["content"] == "eat"
    assert harness.hub.send_action("b", "notify", {"x": "1"}) and not harness.hub.send_action("zz", "notify")
    assert (await b.recv_request()).request.action_name == "notify"

    async def answer() -> None:
        got = await a.recv_request()
        await a.send(gw.Envelope(id="a9", source_id="a", target_id="master",
                                 response=gw.ActionResponse(request_id=got.id, data="done")))

    answering = asyncio.create_task(answer())
    response = await harness.hub.request("a", "location.gps", timeout_s=5)
    await answering
    assert response.data == "done"
    with pytest.raises(LookupError):
        await harness.hub.request("nobody", "x")


async def test_register_replaces_capabilities_and_notifies(harness: HubHarness) -> None:
    changes: list[tuple[NodeChange, str, list[str]]] = []
    harness.hub.add_listener(lambda ch, n, r: changes.append((ch, n.node_id, sorted(n.capabilities))))
    a = await harness.attached("a")
    caps = [gw.Capability(name="location.gps", description="where", params_schema_json='{"type":"object"}')]
    await a.send(gw.Envelope(id="g1", source_id="a", register=gw.CapabilityRegister(capabilities=caps)))
    assert (await a.recv_request()).response.status == 0
    assert changes == [(NodeChange.JOINED, "a", []), (NodeChange.UPDATED, "a", ["location.gps"])]
    [node] = (await harness.stub.ListNodes(pb.ListNodesRequest())).nodes
    assert node.capabilities[0].params_schema_json == '{"type":"object"}'


async def test_second_attach_replaces_first_and_resumes_session(harness: HubHarness) -> None:
    first = await harness.node("phone")
    session = (await first.hello()).welcome.session_id
    second = await harness.node("phone")
    welcome = (await second.hello()).welcome
    assert welcome.resumed and welcome.session_id == session
    assert await first.status() == grpc.StatusCode.ABORTED
    assert [n.node_id for n in harness.hub.nodes()] == ["phone"]


async def test_reconnect_inside_grace_resumes_session(harness: HubHarness) -> None:
    first = await harness.node("phone")
    session = (await first.hello()).welcome.session_id
    await first.call.done_writing()
    assert await first.status() == grpc.StatusCode.OK
    again = await harness.node("phone")
    welcome = (await again.hello()).welcome
    assert welcome.resumed and welcome.session_id == session


@pytest.mark.parametrize("hub_config", [HubConfig(heartbeat_timeout_s=0.4, resume_grace_s=0.0)])
async def test_silent_node_is_dropped_and_session_expires(harness: HubHarness) -> None:
    left: list[str] = []
    harness.hub.add_listener(lambda ch, n, reason: left.append(reason) if ch is NodeChange.LEFT else None)
    node = await harness.node("quiet")
    session = (await node.hello()).welcome.session_id
    assert await node.status() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "heartbeat timeout" in (await node.call.details())
    assert harness.hub.nodes() == [] and "heartbeat timeout" in left[0]
    again = await harness.node("quiet")
    welcome = (await again.hello()).welcome
    assert not welcome.resumed and welcome.session_id != session


async def test_watch_nodes_streams_snapshot_then_changes(harness: HubHarness) -> None:
    await harness.attached("a")
    watch = harness.stub.WatchNodes(pb.WatchNodesRequest())
    first = await asyncio.wait_for(watch.read(), 5)
    assert (first.change, first.node.node_id) == (pb.NODE_CHANGE_PRESENT, "a")
    b = await harness.attached("b")
    joined = await asyncio.wait_for(watch.read(), 5)
    assert (joined.change, joined.node.node_id) == (pb.NODE_CHANGE_JOINED, "b")
    b.call.cancel()
    left = await asyncio.wait_for(watch.read(), 5)
    assert (left.change, left.node.node_id) == (pb.NODE_CHANGE_LEFT, "b")
    watch.cancel()


@pytest.mark.parametrize("watch_backlog", [4])
async def test_a_watcher_that_falls_behind_ends_with_resource_exhausted(harness: HubHarness) -> None:
    await harness.attached("anchor")
    watch = harness.stub.WatchNodes(pb.WatchNodesRequest())
    assert (await asyncio.wait_for(watch.read(), 5)).node.node_id == "anchor"  # subscribed from here on
    for i in range(10):  # ten changes in one go, before the stream can send one: more than its backlog
        harness.hub.join(gw.Envelope(id="h", source_id=f"n{i}", hello=gw.Hello(token=TOKEN, platform="test")))
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        while await asyncio.wait_for(watch.read(), 5) is not grpc.aio.EOF:
            pass  # the changes that fit before it fell behind
    assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "slow watcher: more than 4 node changes" in (ended.value.details() or "")
    async with asyncio.timeout(5):  # the stream's subscription is released
        while harness.hub.watch._fanout.subscribers:  # noqa: ASYNC110 - released by the servicer's finally
            await asyncio.sleep(0.01)


async def test_broadcast_rpc(harness: HubHarness) -> None:
    a = await harness.attached("a")
    answer = await harness.stub.Broadcast(pb.BroadcastRequest(action_name="system_stats", params={"cpu": "3"}))
    assert answer.delivered == 1
    assert (await a.recv_request()).request.action_name == "system_stats"
