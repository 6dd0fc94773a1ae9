"""Two hubs joined through real Redis (in one process, for speed): presence, routing both ways,
broadcasts, Invoke, the dangerous-capability policy on forwarded requests, and leaving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.cluster.hub_link import HubClusterLink
from server.hub.capabilities import CapabilityGrid
from server.hub.hub import Hub
from server.hub.nodes import Closing, NodeLink
from server.rpc.errors import StatusError
from tests.cluster.hubs import TOKEN, join, joined_hub, until


@pytest.fixture
async def two(cluster_url: str) -> AsyncIterator[tuple[Hub, Hub]]:
    (h1, c1), (h2, c2) = await joined_hub(cluster_url), await joined_hub(cluster_url)
    yield h1, h2
    for hub, link in ((h1, c1), (h2, c2)):
        await link.close()
        await hub.close()


async def _next(link: NodeLink, kind: str, wait_s: float = 5.0) -> gw.Envelope:
    async with asyncio.timeout(wait_s):
        while True:
            item = await link.outbox.get()
            assert not isinstance(item, Closing), item
            e = item.envelope
            if e.WhichOneof("payload") == kind and e.id and not (kind == "response" and e.response.request_id == "reg"):
                return e


async def test_nodes_of_two_hubs_meet(two: tuple[Hub, Hub]) -> None:
    h1, h2 = two
    a = join(h1, "dev-a")
    b = join(h2, "dev-b", gw.Capability(name="echo"), gw.Capability(name="shell", dangerous=True))
    await until(lambda: [n.node_id for n in h1.remote_nodes()] == ["dev-b"] and
                 len(h1.remote_nodes()[0].capabilities) == 2)
    await until(lambda: [n.node_id for n in h2.remote_nodes()] == ["dev-a"])

    # a request to a node of the other core, and its answer back
    h1.route(a, gw.Envelope(id="q1", target_id="dev-b", request=gw.ActionRequest(action_name="echo")))
    asked = await _next(b, "request")
    assert (asked.id, asked.source_id) == ("q1", "dev-a")
    h2.route(b, gw.Envelope(id="r1", target_id="dev-a", response=gw.ActionResponse(request_id="q1", data="hi")))
    answer = await _next(a, "response")
    assert (answer.response.request_id, answer.response.data, answer.source_id) == ("q1", "hi", "dev-b")

    # a broadcast reaches the other core's node
    h1.route(a, gw.Envelope(id="s1", target_id="broadcast", request=gw.ActionRequest(action_name="hello_all")))
    assert (await _next(b, "request")).request.action_name == "hello_all"

    # so does a master broadcast meant for everyone (HubService.Broadcast)
    h1.broadcast("announce", {"n": "1"}, everywhere=True)
    assert (await _next(b, "request")).request.params["n"] == "1"

    # the dangerous capability is refused on the forwarded path, and b never sees it
    h1.route(a, gw.Envelope(id="q2", target_id="dev-b", request=gw.ActionRequest(action_name="shell")))
    refused = await _next(a, "response")
    assert refused.response.code == "PERMISSION_DENIED" and "--allow-dangerous shell" in refused.response.error_msg
    assert b.outbox.empty()

    # Invoke on core 1 runs on core 2's node
    grid = CapabilityGrid(h1)
    assert {o.tool_name for o in grid.offers()} == {"test.echo", "test.shell"}

    async def answer_invoke() -> None:
        asked = await _next(b, "request")
        data = "pong:" + asked.request.action_name
        h2.route(b, gw.Envelope(id="r2", target_id=asked.source_id,
                                response=gw.ActionResponse(request_id=asked.id, data=data)))

    answering = asyncio.create_task(answer_invoke())
    done = await grid.invoke("test.echo", {})
    await answering
    assert (done.node_id, done.result) == ("dev-b", "pong:echo")
    with pytest.raises(StatusError) as denied:
        await grid.invoke("test.shell", {})
    assert denied.value.code.name == "PERMISSION_DENIED"
    grid.close()

    # b leaves while core 1 waits for its answer: the request fails at once, and core 1 forgets b
    # (announced), long before its record would expire
    waiting = asyncio.create_task(h1.request("dev-b", "echo", timeout_s=30))
    await _next(b, "request")
    h2.leave(b, grpc.StatusCode.OK, "bye")
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(waiting, 1.0)
    await until(lambda: not h1.remote_nodes(), 1.0)


async def test_a_dead_cores_nodes_expire(cluster_url: str) -> None:
    """A core that stops without a word (its link's tasks gone, nothing deleted): its nodes vanish
    from the other core within the heartbeat timeout."""
    h1, c1 = await joined_hub(cluster_url)
    h2, c2 = await joined_hub(cluster_url)
    try:
        join(h2, "dev-b")
        await until(lambda: bool(h1.remote_nodes()))
        await c2._tasks.close()  # no more refreshes, no goodbye: what kill -9 leaves behind
        await c2._bus.close()
        started = asyncio.get_running_loop().time()
        await until(lambda: not h1.remote_nodes(), 3.0)
        assert asyncio.get_running_loop().time() - started <= h1.config.heartbeat_timeout_s
    finally:
        await c1.close()
        await h1.close()
        await c2._client.aclose()
        await h2.close()


async def test_an_unreachable_redis_fails_the_start_with_the_reason() -> None:
    hub = Hub(TOKEN)
    with pytest.raises(RuntimeError, match="Redis is unreachable"):
        await HubClusterLink(hub, "redis://127.0.0.1:1/0").start()  # port 1: nothing listens


async def test_a_master_broadcast_reaches_each_node_once_and_keeps_no_route(cluster_url: str) -> None:
    """A master broadcast meant for everyone (a task update) reaches each node of either core once,
    never echoed back to its core, and takes no place in the other core's bounded route table:
    nobody waits for an answer to it, and real requests' routes must not be pushed out."""
    (h1, c1), (h2, c2) = await joined_hub(cluster_url), await joined_hub(cluster_url)
    try:
        a = join(h1, "dev-a")
        others = [join(h2, f"dev-{i}") for i in range(3)]
        assert h1.broadcast("task:update", {"operation": "added"}, everywhere=True) == 1
        for node in [a, *others]:
            assert (await _next(node, "request")).request.action_name == "task:update"
        assert not c2._routes

        # a node's broadcast, behind it on the same bus: its answers still find their way back
        h1.route(a, gw.Envelope(id="s1", target_id="broadcast", request=gw.ActionRequest(action_name="ping")))
        for node in others:
            assert (await _next(node, "request")).request.action_name == "ping"
        assert len(c2._routes) == len(others)
        while not a.outbox.empty():  # core 1 got its own broadcast back from the bus: it is dropped
            item = a.outbox.get_nowait()
            assert isinstance(item, Closing) or not item.envelope.HasField("request"), item
    finally:
        for hub, link in ((h1, c1), (h2, c2)):
            await link.close()
            await hub.close()
