"""A real reminder process SIGKILLed around a due time: the offline relay gets exactly one trigger.

The relay connects once (learning its cursor), goes offline, the reminder
falls due around the kill, the process restarts, and the relay reconnects
with its cursor. Whatever the kill moment (before the due time, right at it,
right after the trigger was logged), the relay must receive that occurrence
exactly once, and no duplicate may arrive live afterwards.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration

from peromesh.reminder.v1 import reminder_service_pb2 as pb
from peromesh.reminder.v1 import reminder_service_pb2_grpc as pb_grpc
from server.rpc.channels import open_channel
from server.storage.db import sqlite_url
from tests.meshkit import TEST_TOKEN
from tests.reminders.harness import ChildServer, Relay


async def _create(address: str, seconds: float, content: str) -> pb.Reminder:
    d = Duration()
    d.FromTimedelta(timedelta(seconds=seconds))
    async with open_channel(address, TEST_TOKEN) as channel:
        stub = pb_grpc.ReminderServiceStub(channel)
        return (await stub.CreateReminder(pb.CreateReminderRequest(delay=d, content=content))).reminder


async def _wait_for_trigger(address: str, reminder_id: str, timeout: float) -> None:
    """Returns as soon as the trigger is in the log (an observer sees it live)."""
    async with open_channel(address, TEST_TOKEN) as channel:
        stub = pb_grpc.ReminderServiceStub(channel)
        call = stub.WatchReminders(pb.WatchRemindersRequest(after_cursor=0))
        async with asyncio.timeout(timeout):
            async for event in call:
                if event.HasField("trigger") and event.trigger.reminder_id == reminder_id:
                    call.cancel()
                    return


@pytest.mark.parametrize("kill", ["before_due", "at_due", "after_firing"])
async def test_sigkill_around_due_time_delivers_exactly_once(tmp_path: Path, kill: str) -> None:
    server = ChildServer(sqlite_url(tmp_path, "reminders"))
    try:
        address = await server.start()
        relay = Relay(address)
        await relay.session()  # online once: learns cursor 0, then offline
        reminder = await _create(address, 1.5, f"stretch ({kill})")
        if kill == "before_due":
            await asyncio.sleep(0.5)
        elif kill == "at_due":
            await asyncio.sleep(1.5)
        else:
            await _wait_for_trigger(address, reminder.id, timeout=10)
        await server.kill()
        await asyncio.sleep(max(0.0, 2.0 - (0.5 if kill == "before_due" else 1.5)))  # past due either way
        relay.address = await server.start()
        got = await relay.session(until_caught_up_and=2.0)  # backlog, then 2 s of live events
        assert [(t.reminder_id, t.status) for t in got] == [(reminder.id, pb.TRIGGER_STATUS_FIRED)]
        assert await relay.session(until_caught_up_and=0.5) == []
    finally:
        await server.terminate()


async def test_downtime_beyond_grace_is_reported_missed_not_dropped(tmp_path: Path) -> None:
    server = ChildServer(sqlite_url(tmp_path, "reminders"), "--reminder-misfire-grace", "0.5")
    try:
        address = await server.start()
        relay = Relay(address)
        await relay.session()
        reminder = await _create(address, 0.8, "take pills")
        await server.kill()
        await asyncio.sleep(2.0)  # due passed 1.2 s ago: more than the 0.5 s grace
        relay.address = await server.start()
        got = await relay.session(until_caught_up_and=1.0)
        assert [(t.reminder_id, t.status) for t in got] == [(reminder.id, pb.TRIGGER_STATUS_MISSED)]
    finally:
        await server.terminate()
