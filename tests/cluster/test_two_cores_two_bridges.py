"""Two cores and two bridges as separate processes on one PostgreSQL and one Redis: devices on
different bridges (and cores) meet, a WatchNodes stream on one core follows the other core's
devices, and a kill -9 of a core is survived by its bridge's devices."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from websockets.exceptions import ConnectionClosed

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as hpb
from peromesh.hub.v1 import hub_service_pb2_grpc as hpb_grpc
from server.hub.watch import EXPIRED_REASON
from server.rpc.auth import bearer_metadata
from server.rpc.channels import open_channel as grpc_channel
from tests.bridge.gateway_client import GatewayClient, action_is
from tests.cluster.processes import TOKEN, Served, device
from tests.cluster.watching import NodeWatcher

pytestmark = pytest.mark.timeout(90)


async def _offers(core_address: str) -> set[str]:
    async with grpc_channel(core_address, TOKEN) as channel:
        stub = hpb_grpc.HubServiceStub(channel)
        answer = await stub.ListCapabilities(hpb.ListCapabilitiesRequest(), metadata=bearer_metadata(TOKEN))
    return {f"{o.node_id}/{o.capability.name}" for o in answer.capabilities}


async def _eventually_offers(core_address: str, wanted: set[str], wait_s: float = 5.0) -> None:
    async with asyncio.timeout(wait_s):
        while not wanted <= await _offers(core_address):  # noqa: ASYNC110 - another process's state
            await asyncio.sleep(0.1)


async def test_devices_meet_across_bridges_and_survive_a_core(cluster: list[Served]) -> None:
    core1, core2, bridge1, bridge2 = cluster
    two = await device(bridge2, "dev-two", "echo")
    watcher = NodeWatcher(core2.address, TOKEN)  # on core 2, following core 1's devices too
    await watcher.until_seen(hpb.NODE_CHANGE_PRESENT, "dev-two")  # subscribed: what follows are changes
    one = await device(bridge1, "dev-one", "lamp.on")
    gone = await device(bridge1, "dev-gone")  # on core 1 until its death, then not coming back
    try:
        # capabilities cluster-wide: each core offers the other core's device
        await _eventually_offers(core1.address, {"dev-two/echo", "dev-one/lamp.on"})
        await _eventually_offers(core2.address, {"dev-two/echo", "dev-one/lamp.on"})
        await watcher.until_seen(hpb.NODE_CHANGE_JOINED, "dev-gone")
        await watcher.until(lambda seen: any(c.node.node_id == "dev-one" and c.node.capabilities for c in seen))
        assert watcher.seen("dev-one")[0] == (hpb.NODE_CHANGE_JOINED, "dev-one", "")

        # a broadcast from bridge 1 reaches the device on bridge 2
        await one.request("hello_all", target="broadcast", who="one")
        heard = await two.recv_until(action_is("hello_all"), 10)
        assert heard[-1].source_id == "dev-one" and heard[-1].request.params["who"] == "one"

        # a request to the device on the other bridge, and its answer back
        rid = await one.request("echo", target="dev-two", text="ping")
        asked = (await two.recv_until(action_is("echo"), 10))[-1]
        assert asked.id == rid and asked.source_id == "dev-one"
        await two.send(gw.Envelope(id="ans", source_id="dev-two", target_id="dev-one",
                                   response=gw.ActionResponse(request_id=rid, data="pong")))
        got = (await one.recv_until(lambda e: e.HasField("response") and e.response.request_id == rid, 10))[-1]
        assert got.response.data == "pong" and got.source_id == "dev-two"

        # Invoke on core 1 runs on the device attached (through bridge 2) to core 2
        async def answer_invoke() -> None:
            asked = (await two.recv_until(action_is("echo"), 10))[-1]
            await two.send(gw.Envelope(id="ans2", source_id="dev-two", target_id=asked.source_id,
                                       response=gw.ActionResponse(request_id=asked.id, data="invoked")))

        answering = asyncio.create_task(answer_invoke())
        async with grpc_channel(core1.address, TOKEN) as channel:
            done = await hpb_grpc.HubServiceStub(channel).Invoke(
                hpb.InvokeRequest(name="test.echo", arguments_json="{}", timeout_ms=10_000),
                metadata=bearer_metadata(TOKEN))
        await answering
        assert (done.node_id, done.result) == ("dev-two", "invoked")

        # kill -9 of bridge 1's core: its device comes back through bridge 1 on core 2 and chats
        await core1.kill()
        started = asyncio.get_running_loop().time()
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            await one.recv_until(lambda e: False, 10)  # the bridge closes the socket (1013: try again)
        assert one.ws.close_code == 1013, (one.ws.close_code, one.ws.close_reason)
        again = None
        while again is None:
            try:
                again = await GatewayClient.open(f"ws://{bridge1.address}/ws", "dev-one", token=TOKEN)
            except (OSError, AssertionError, ConnectionClosed):
                await asyncio.sleep(0.2)
            assert asyncio.get_running_loop().time() - started < 10
        rid = await again.request("chat", text="are you still there?")
        await again.recv_until(action_is("assistant_final"), 10)
        took = asyncio.get_running_loop().time() - started
        print(f"failover: chatting again {took:.2f} s after kill -9 of the core")
        assert took < 10, "chatting again took over 10 s"

        # core 2's watcher: core 1's device that did not come back expired within the heartbeat
        # timeout; the one that came back left core 1 and joined core 2; each change seen once
        expired = await watcher.index_of(hpb.NODE_CHANGE_LEFT, "dev-gone", 8)
        assert watcher.changes[expired].reason == EXPIRED_REASON
        took = watcher.times[expired] - started
        print(f"watch: core 1's device left core 2's watch {took:.2f} s after kill -9 of core 1")
        assert took <= 4.0, "longer than --hub-heartbeat-timeout 4"
        assert [c for c, *_ in watcher.seen("dev-gone")] == [hpb.NODE_CHANGE_JOINED, hpb.NODE_CHANGE_LEFT]
        moved = [c for c, *_ in watcher.seen("dev-one") if c != hpb.NODE_CHANGE_UPDATED]
        assert moved == [hpb.NODE_CHANGE_JOINED, hpb.NODE_CHANGE_LEFT, hpb.NODE_CHANGE_JOINED], watcher.seen("dev-one")
        assert watcher.seen("dev-two") == [(hpb.NODE_CHANGE_PRESENT, "dev-two", "")]
        await again.close()

        # core 2 still offers the device of its own bridge
        await _eventually_offers(core2.address, {"dev-two/echo"})
    finally:
        await watcher.close()
        for client in (one, two, gone):
            with contextlib.suppress(Exception):
                await client.close()
