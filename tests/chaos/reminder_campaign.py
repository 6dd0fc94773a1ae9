"""The reminder chaos campaign: kill the core at named points while reminders fall due, restart, count.

The core runs as a real child process (`peromesh serve --only core`) on one
data dir. Its first life schedules `reminders` occurrences, `spacing_s` apart;
each life is armed with one failpoint (`reminder.after_fire=N`: the trigger
is logged, not yet published; `reminder.before_ack=N`: a device has it, its
cursor has not moved; `attach.before_receipted_write=N`: a trigger for the
PeroLink v1 node is queued, not yet written to its Attach stream;
`bridge.before_reminder_write=N`: the same for the WebSocket client) and ends
when the failpoint kills it (exit 137) or, at the latest, after `life_s` with
a SIGKILL. The bridge runs in the core's process. Three devices: "desk" (a
PeroLink v1 node on HubService.Attach: the written trigger counts as its ack)
and "console" (a PeroLink v1 app on the bridge's WebSocket: the bridge acks
what it wrote to it) attach to every life, "phone" (acks each trigger itself)
only to every other life, so it is offline while some reminders fire and while
the core catches up. A last life without failpoints runs until every device
has shown every occurrence (or `settle_s` passes).

Counted per device, from what it showed (a device drops a cursor it has seen,
as clients are told to): lost (occurrences never shown), duplicates (an
occurrence shown twice: two log rows for one due time), and redeliveries (the
same cursor again on the wire: at-least-once, harmless).

tests/chaos/test_reminder_crash.py runs a short campaign; benchmarks/chaos.py
can run a long one (`run_campaign(..., kills=...)`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from chaos.core_process import TOKEN, CoreProcess, free_port
from peromesh.reminder.v1 import reminder_service_pb2 as pb
from peromesh.reminder.v1 import reminder_service_pb2_grpc as pb_grpc
from server.rpc.channels import open_channel
from tests.reminders.device import Device, WsDevice

DEFAULT_KILLS = ("attach.before_receipted_write=2", "reminder.after_fire=2", "bridge.before_reminder_write=1",
                 "reminder.before_ack=3")
AnyDevice = Device | WsDevice


@dataclass
class DeviceReport:
    shown: int = 0
    lost: int = 0
    duplicates: int = 0
    redeliveries: int = 0


@dataclass
class CampaignReport:
    occurrences: int
    kills: int = 0  # lives ended by a failpoint (exit 137)
    sigkills: int = 0  # lives that outlived life_s and were killed -9 from outside
    devices: dict[str, DeviceReport] = field(default_factory=dict)

    def lost(self) -> int:
        return sum(d.lost for d in self.devices.values())

    def duplicates(self) -> int:
        return sum(d.duplicates for d in self.devices.values())


async def _schedule(address: str, count: int, spacing_s: float) -> set[str]:
    start = datetime.now(UTC) + timedelta(seconds=1.5)
    ids: set[str] = set()
    async with open_channel(address, TOKEN) as channel:
        stub = pb_grpc.ReminderServiceStub(channel)
        for i in range(count):
            due = Timestamp()
            due.FromDatetime(start + timedelta(seconds=i * spacing_s))
            made = await stub.CreateReminder(pb.CreateReminderRequest(content=f"chaos {i}", due_time=due))
            ids.add(made.reminder.id)
    return ids


async def _connect(core: CoreProcess, device: AnyDevice) -> None:
    if isinstance(device, WsDevice):
        await device.connect(core.ws_url, TOKEN)
    else:
        await device.connect(core.address, TOKEN)


async def _live(core: CoreProcess, devices: list[AnyDevice], life_s: float) -> bool:
    """Attach the devices and wait for the core to die; True when a failpoint killed it."""
    for device in devices:
        with contextlib.suppress(Exception):  # the core may die while a device attaches
            await _connect(core, device)
    try:
        return await core.exited(life_s) == 137
    except TimeoutError:
        await core.kill()
        return False
    finally:
        for device in devices:
            await device.disconnect()


async def run_campaign(data_dir: Path, kills: tuple[str, ...] = DEFAULT_KILLS, reminders: int = 8,
                       spacing_s: float = 1.5, life_s: float = 20.0, settle_s: float = 60.0) -> CampaignReport:
    desk, phone, console = Device("desk"), Device("phone", acks=True), WsDevice("console")
    everyone: list[AnyDevice] = [desk, phone, console]
    report = CampaignReport(reminders)
    ids: set[str] = set()
    port = free_port()
    for life, failpoint in enumerate(kills):
        core = CoreProcess(data_dir, failpoint, "--reminder-timezone", "UTC", bridge_port=port)
        try:
            await core.start()
        except RuntimeError:  # the failpoint fired during start-up: catch-up fires the overdue ones first
            if core.proc is None or core.proc.returncode != 137:
                raise
            report.kills += 1
            continue
        if life == 0:
            ids = await _schedule(core.address, reminders, spacing_s)
        online: list[AnyDevice] = everyone if life % 2 == 0 else [desk, console]
        if await _live(core, online, life_s):
            report.kills += 1
        else:
            report.sigkills += 1
    core = CoreProcess(data_dir, "", "--reminder-timezone", "UTC", bridge_port=port)
    await core.start()
    try:
        for device in everyone:
            await _connect(core, device)
        for device in everyone:
            with contextlib.suppress(TimeoutError):
                await device.wait_for(reminders, settle_s)
    finally:
        for device in everyone:
            await device.disconnect()
        await core.kill()
    for device in everyone:
        seen = {s["id"] for s in device.shown}
        report.devices[device.node_id] = DeviceReport(
            shown=len(device.shown), lost=len(ids - seen), duplicates=device.duplicates(),
            redeliveries=sum(n - 1 for n in device.raw.values()))
    return report
