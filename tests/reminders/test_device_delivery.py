"""Every device gets every reminder exactly once: offline devices, unacknowledged triggers, restarts.

Real meshes (the core, and the bridge where a WebSocket client is the device),
real Attach streams; a reminder "has fired" when the service published its
trigger (awaited, not slept for). A device that sends no ack (PeroLink v1)
counts as acknowledging once the trigger was written to it, never when it
was only queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from meshkit import TEST_TOKEN, Conversation, start_test_mesh

from peromesh.dialog.v1 import dialog_service_pb2 as dpb
from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as hpb
from server.app.root import Mesh
from server.hub.hub import Hub
from server.hub.nodes import NodeLink
from server.reminders.service import ReminderService
from server.reminders.store import Trigger
from server.rpc.channels import open_channel
from tests.bridge.gateway_client import GatewayClient, action_is
from tests.reminders.device import Device, WsDevice

FLAGS = ("--reminder-timezone", "UTC", "--scripted-delay-ms", "1")


@pytest.fixture
async def make_mesh(data_dir: Path) -> AsyncIterator[Callable[..., object]]:
    running: list[Mesh] = []

    async def make(*only: str, flags: tuple[str, ...] = ()) -> Mesh:
        mesh = await start_test_mesh(data_dir, *FLAGS, *flags, only=list(only or ["core"]))
        running.append(mesh)
        return mesh

    yield make
    for mesh in running:
        await mesh.stop()


def reminders_of(mesh: Mesh) -> ReminderService:
    service: ReminderService = mesh.core.reminders
    return service


async def fire(mesh: Mesh, content: str, delay_s: float = 0.3) -> Trigger:
    """Create a reminder and wait until it has fired (its trigger is published)."""
    service = reminders_of(mesh)
    with service.triggers() as live:
        made = await service.create(content=content, delay=timedelta(seconds=delay_s))
        async with asyncio.timeout(20):
            while (trigger := await live.get()).reminder_id != made.id:
                pass
    return trigger


async def detached(mesh: Mesh, node_id: str) -> None:
    """Until the hub has let the node go (its leave is what ends the node's delivery pump)."""
    hub: Hub = mesh.core.hub
    gone = asyncio.Event()
    remove = hub.add_listener(lambda change, node, reason: gone.set() if hub.node(node_id) is None else None)
    try:
        if hub.node(node_id) is not None:
            await asyncio.wait_for(gone.wait(), 10)
    finally:
        remove()


@pytest.mark.parametrize("acks", [False, True], ids=["perolink-v1", "acking"])
async def test_offline_device_gets_each_missed_reminder_once_on_reconnect(
        make_mesh: Callable[..., object], acks: bool) -> None:
    mesh: Mesh = await make_mesh()  # type: ignore[operator]
    phone = Device("phone", acks=acks)
    await phone.connect(mesh.addresses["core"])
    one = await fire(mesh, "one")
    await phone.wait_for(1)
    if acks:
        await phone.wait_acked(one.cursor)
    await phone.disconnect()
    await detached(mesh, "phone")
    await fire(mesh, "two")
    await fire(mesh, "three")
    await phone.connect(mesh.addresses["core"])
    shown = await phone.wait_for(3)
    assert [s["content"] for s in shown] == ["one", "two", "three"]
    assert [s.get("replayed") for s in shown] == [None, "true", "true"]
    await fire(mesh, "four")
    await phone.wait_for(4)
    await phone.disconnect()
    assert phone.duplicates() == 0
    assert list(phone.raw.values()) == [1, 1, 1, 1]  # acknowledged on delivery or by the device: none sent twice


async def test_unacknowledged_trigger_is_sent_again_and_shown_once(make_mesh: Callable[..., object]) -> None:
    mesh: Mesh = await make_mesh()  # type: ignore[operator]
    phone = Device("phone", acks=True)
    phone.withhold_acks = True  # it dies before acknowledging
    await phone.connect(mesh.addresses["core"])
    first = await fire(mesh, "one")
    await phone.wait_for(1)
    await phone.disconnect()
    await detached(mesh, "phone")
    phone.withhold_acks = False
    await phone.connect(mesh.addresses["core"])
    await phone.wait_raw(first.cursor, 2)  # the replay of what it never acknowledged
    await phone.wait_acked(first.cursor)
    await phone.disconnect()
    await detached(mesh, "phone")
    await phone.connect(mesh.addresses["core"])
    await fire(mesh, "two")
    await phone.wait_for(2)
    await phone.disconnect()
    assert [s["content"] for s in phone.shown] == ["one", "two"] and phone.duplicates() == 0
    assert phone.raw[first.cursor] == 2  # acknowledged the second time: not sent a third


async def test_targeted_reminder_reaches_only_its_device_even_when_it_was_offline(
        make_mesh: Callable[..., object]) -> None:
    mesh: Mesh = await make_mesh()  # type: ignore[operator]
    phone, desk = Device("phone"), Device("desk")
    await phone.connect(mesh.addresses["core"])  # known to the mesh from now on
    await phone.disconnect()
    await desk.connect(mesh.addresses["core"])
    await detached(mesh, "phone")
    service = reminders_of(mesh)
    with service.triggers() as live:
        await service.create(content="pills", delay=timedelta(seconds=0.3), target_devices=["phone"])
        await asyncio.wait_for(live.get(), 20)
    await fire(mesh, "for everyone")
    await desk.wait_for(1)
    await phone.connect(mesh.addresses["core"])
    await phone.wait_for(2)
    await phone.disconnect()
    await desk.disconnect()
    assert [s["content"] for s in desk.shown] == ["for everyone"]
    assert [s["content"] for s in phone.shown] == ["pills", "for everyone"]


async def test_reminders_due_while_the_core_was_down_reach_devices_and_are_spoken(
        make_mesh: Callable[..., object]) -> None:
    first: Mesh = await make_mesh()  # type: ignore[operator]
    phone = Device("phone")
    await phone.connect(first.addresses["core"])  # the mesh knows the device (its cursor)
    made = await reminders_of(first).create(content="stretch", delay=timedelta(seconds=1.0))
    await phone.disconnect()
    await first.stop()
    assert made.next_due_time is not None
    await asyncio.sleep(max(0.0, (made.next_due_time - datetime.now(UTC)).total_seconds()) + 0.2)  # due while down
    second: Mesh = await make_mesh()  # type: ignore[operator]
    async with open_channel(second.addresses["core"], TEST_TOKEN) as channel:
        talk = Conversation(channel)
        talk.config(session_id="s-phone", device_id="phone", text_only=True)
        assert (await talk.next()).HasField("session_started")
        await phone.connect(second.addresses["core"])
        [shown] = await phone.wait_for(1)
        assert (shown["id"], shown["status"], shown["replayed"]) == (made.id, "fired", "true")
        events = await talk.until_state(dpb.STATE_IDLE, timeout=20)
        await talk.close()
    await phone.disconnect()
    finals = [e.assistant_final.text for e in events if e.HasField("assistant_final")]
    assert finals == ["Reminder: stretch"]


@pytest.mark.parametrize("hub_port", ["in-process", "grpc"])
async def test_reminder_is_spoken_on_a_console_that_has_not_talked_yet(
        make_mesh: Callable[..., object], hub_port: str) -> None:
    flags = ("--bridge-hub", "grpc") if hub_port == "grpc" else ()
    mesh: Mesh = await make_mesh("core", "bridge", flags=flags)  # type: ignore[operator]
    console = await GatewayClient.open(f"ws://{mesh.addresses['bridge']}/ws", "console")
    try:
        made = await reminders_of(mesh).create(content="drink water", delay=timedelta(seconds=0.3))
        [*_, trigger] = await console.recv_until(action_is("reminder_trigger"))
        assert trigger.request.params["id"] == made.id
        [*_, final] = await console.recv_until(action_is("assistant_final"))
        assert final.request.params["text"] == "Reminder: drink water"
    finally:
        await console.close()


class AckLog:
    """Every acknowledgement the delivery records, noted when it is asked for (before the commit)."""

    def __init__(self, service: ReminderService, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, int]] = []
        self.service = service
        self._committed = asyncio.Event()
        real = service.acknowledge

        async def recording(device_id: str, cursor: int) -> int:
            self.calls.append((device_id, cursor))
            try:
                return await real(device_id, cursor)
            finally:
                self._committed.set()

        monkeypatch.setattr(service, "acknowledge", recording)

    def of(self, node_id: str) -> list[int]:
        return [cursor for device, cursor in self.calls if device == node_id]

    async def reached(self, node_id: str, cursor: int, wait_s: float = 10.0) -> None:
        """Until `node_id`'s stored cursor is at least `cursor`."""
        async with asyncio.timeout(wait_s):
            while True:
                self._committed.clear()  # before the read: an ack committing meanwhile still wakes us
                if await self.service.device_cursor(node_id) >= cursor:
                    return
                await self._committed.wait()


async def next_trigger(link: NodeLink) -> hpb.AttachResponse:
    """The next reminder_trigger queued on `link` (broadcasts such as schedule_update are passed over)."""
    async with asyncio.timeout(10):
        while True:
            item = await link.outbox.get()
            if isinstance(item, hpb.AttachResponse) and item.envelope.request.action_name == "reminder_trigger":
                return item


def hello(node_id: str, reminder_acks: bool = False) -> gw.Envelope:
    return gw.Envelope(id="hello", source_id=node_id, target_id="master",
                       hello=gw.Hello(token=TEST_TOKEN, platform="test", protocol_version=1,
                                      reminder_acks=reminder_acks))


async def test_perolink_v1_node_counts_as_acknowledging_only_once_the_trigger_was_written(
        make_mesh: Callable[..., object], monkeypatch: pytest.MonkeyPatch) -> None:
    """The link's outbox stands for an Attach stream whose servicer has not written yet."""
    mesh: Mesh = await make_mesh()  # type: ignore[operator]
    hub: Hub = mesh.core.hub
    acks = AckLog(reminders_of(mesh), monkeypatch)
    start = await reminders_of(mesh).device_cursor("desk")  # known to the mesh from here on
    link = hub.join(hello("desk"), hpb.TRANSPORT_GRPC, "test")
    welcome = link.outbox.get_nowait()
    assert isinstance(welcome, hpb.AttachResponse) and welcome.envelope.HasField("welcome")
    one = await fire(mesh, "one")
    queued_one = await next_trigger(link)
    two = await fire(mesh, "two")  # the pump went through its log reads and sends meanwhile
    queued_two = await next_trigger(link)
    assert [q.envelope.request.params["cursor"] for q in (queued_one, queued_two)] == [str(one.cursor),
                                                                                         str(two.cursor)]
    assert acks.of("desk") == [] and await reminders_of(mesh).device_cursor("desk") == start  # queued ≠ received
    assert link.awaits_receipt(queued_one)
    link.written(queued_one)
    await acks.reached("desk", one.cursor)
    hub.leave(link, grpc.StatusCode.CANCELLED, "the stream ended before the second was written")
    await detached(mesh, "desk")
    assert acks.of("desk") == [one.cursor]
    again = hub.join(hello("desk"), hpb.TRANSPORT_GRPC, "test")
    replayed = await next_trigger(again)
    assert (replayed.envelope.request.params["cursor"], replayed.envelope.request.params["replayed"]) == (
        str(two.cursor), "true")
    again.written(replayed)
    await acks.reached("desk", two.cursor)
    hub.leave(again, grpc.StatusCode.CANCELLED, "done")


@pytest.mark.parametrize("hub_port", ["in-process", "grpc"])
async def test_bridge_acknowledges_for_a_client_that_does_not_and_leaves_it_to_one_that_does(
        make_mesh: Callable[..., object], monkeypatch: pytest.MonkeyPatch, hub_port: str) -> None:
    flags = ("--bridge-hub", "grpc") if hub_port == "grpc" else ()
    mesh: Mesh = await make_mesh("core", "bridge", flags=flags)  # type: ignore[operator]
    url = f"ws://{mesh.addresses['bridge']}/ws"
    service = reminders_of(mesh)
    acks = AckLog(service, monkeypatch)
    for node_id in ("kiosk", "tablet"):
        await service.device_cursor(node_id)
    kiosk = WsDevice("kiosk")  # PeroLink v1: sends no ack
    await kiosk.connect(url)
    tablet = await GatewayClient.open(url, "tablet", hello=False)  # the SDK: reminder_acks, acks what it showed
    try:
        await tablet.send(hello("tablet", reminder_acks=True))
        assert (await tablet.recv()).HasField("welcome")
        made = await fire(mesh, "water")
        await kiosk.wait_for(1)
        await acks.reached("kiosk", made.cursor)  # the bridge's ack, once it wrote the frame
        [*_, trigger] = await tablet.recv_until(action_is("reminder_trigger"))
        cursor = trigger.request.params["cursor"]
        pinged = await tablet.request("ping")
        await tablet.recv_until(lambda e: e.response.request_id == pinged)
        assert acks.of("tablet") == []  # the bridge left it to the client
        acked = await tablet.request("reminder_ack", cursor=cursor)
        [*_, answer] = await tablet.recv_until(lambda e: e.response.request_id == acked)
        assert (answer.response.status, answer.response.data) == (0, cursor)
        assert acks.of("tablet") == [made.cursor] and acks.of("kiosk") == [made.cursor]
    finally:
        await kiosk.disconnect()
        await tablet.close()
