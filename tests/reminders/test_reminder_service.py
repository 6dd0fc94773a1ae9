"""ReminderService over real gRPC: create/list/cancel, firing, resumable WatchReminders, catch-up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select, update

from peromesh.reminder.v1 import reminder_service_pb2 as pb
from server.reminders.store import ReminderRow, TriggerRow
from server.storage.db import sqlite_url
from tests.reminders.harness import Relay, reminder_server, wait_status


def delay(seconds: float) -> Duration:
    d = Duration()
    d.FromTimedelta(timedelta(seconds=seconds))
    return d


async def test_delay_reminder_fires_once_to_live_and_resuming_watchers(tmp_path: Path) -> None:
    async with reminder_server(sqlite_url(tmp_path, "r")) as srv:
        relay = Relay(srv.address)
        assert await relay.session() == []  # no backlog; cursor 0
        assert relay.cursor == 0
        created = await srv.stub.CreateReminder(pb.CreateReminderRequest(delay=delay(0.5), content="stretch"))
        r = created.reminder
        assert r.state == pb.REMINDER_STATE_ACTIVE and r.HasField("due_time") and r.HasField("next_due_time")
        live = await Relay(srv.address).session(until_caught_up_and=2.5)
        assert [(t.reminder_id, t.content, t.status) for t in live] == [(r.id, "stretch", pb.TRIGGER_STATUS_FIRED)]
        assert live[0].due_time == r.due_time and live[0].fired_time.ToDatetime() >= r.due_time.ToDatetime()
        # The relay was offline during the trigger: it gets it from its cursor, exactly once.
        missed = await relay.session()
        assert [t.cursor for t in missed] == [live[0].cursor]
        assert await relay.session() == []
        listed = await srv.stub.ListReminders(pb.ListRemindersRequest(include_inactive=True))
        assert [(x.id, x.state, x.HasField("next_due_time")) for x in listed.reminders] == \
            [(r.id, pb.REMINDER_STATE_DONE, False)]
        assert (await srv.stub.ListReminders(pb.ListRemindersRequest())).reminders == []


async def test_cancel_prevents_firing_and_reports_errors(tmp_path: Path) -> None:
    async with reminder_server(sqlite_url(tmp_path, "r")) as srv:
        updates = srv.service.schedule_updates()
        r = (await srv.stub.CreateReminder(pb.CreateReminderRequest(delay=delay(0.6), content="x"))).reminder
        cancelled = await srv.stub.CancelReminder(pb.CancelReminderRequest(id=r.id))
        assert cancelled.reminder.state == pb.REMINDER_STATE_CANCELLED
        assert await wait_status(srv.stub.CancelReminder(pb.CancelReminderRequest(id=r.id))) == \
            grpc.StatusCode.FAILED_PRECONDITION
        assert await wait_status(srv.stub.CancelReminder(pb.CancelReminderRequest(id="nope"))) == \
            grpc.StatusCode.NOT_FOUND
        assert await Relay(srv.address).session(until_caught_up_and=1.2) == []
        assert [u.operation for u in (updates.get_nowait(), updates.get_nowait())] == ["create", "cancel"]
        updates.close()


@pytest.mark.parametrize("request_", [
    pb.CreateReminderRequest(content="x"),  # no schedule
    pb.CreateReminderRequest(delay=delay(-1), content="x"),
    pb.CreateReminderRequest(delay=delay(5), content="   "),
    pb.CreateReminderRequest(due_time=Timestamp(seconds=1000), content="x"),  # 1970
    pb.CreateReminderRequest(cron=pb.CronSchedule(minute="61"), content="x"),
    pb.CreateReminderRequest(delay=delay(5), content="x", timezone="Mars/Base"),
])
async def test_invalid_requests_are_rejected(tmp_path: Path, request_: pb.CreateReminderRequest) -> None:
    async with reminder_server(sqlite_url(tmp_path, "r")) as srv:
        assert await wait_status(srv.stub.CreateReminder(request_)) == grpc.StatusCode.INVALID_ARGUMENT


async def test_cron_weekday_numbers_follow_crontab(tmp_path: Path) -> None:
    async with reminder_server(sqlite_url(tmp_path, "r")) as srv:
        cron = pb.CronSchedule(minute="0", hour="9", day_of_week="1-5")
        r = (await srv.stub.CreateReminder(pb.CreateReminderRequest(cron=cron, content="stand up"))).reminder
        assert r.cron.day_of_week == "mon-fri"
        nxt = r.next_due_time.ToDatetime(tzinfo=UTC).astimezone(
            __import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
        assert (nxt.hour, nxt.minute) == (9, 0) and nxt.weekday() < 5


async def test_create_from_text(tmp_path: Path) -> None:
    async with reminder_server(sqlite_url(tmp_path, "r")) as srv:
        preview = await srv.stub.CreateReminderFromText(pb.CreateReminderFromTextRequest(
            text="every weekday at 9 remind me to stand up", timezone="Europe/Berlin", validate_only=True))
        assert preview.reminder.id == "" and preview.reminder.cron.day_of_week == "mon-fri"
        assert preview.reminder.content == "stand up" and "09:00" in preview.confirmation
        assert (await srv.stub.ListReminders(pb.ListRemindersRequest())).reminders == []
        made = await srv.stub.CreateReminderFromText(pb.CreateReminderFromTextRequest(text="10分钟后提醒我喝水"))
        assert made.reminder.id and made.reminder.content == "喝水" and made.time_phrase == "10分钟后"
        due = made.reminder.due_time.ToDatetime(tzinfo=UTC)
        assert abs((due - datetime.now(UTC)) - timedelta(minutes=10)) < timedelta(seconds=5)
        assert made.confirmation.startswith("好的")
        status = await wait_status(srv.stub.CreateReminderFromText(
            pb.CreateReminderFromTextRequest(text="remind me to buy milk")))
        assert status == grpc.StatusCode.INVALID_ARGUMENT


async def test_watch_resumes_from_any_cursor_and_filters_devices(tmp_path: Path) -> None:
    async with reminder_server(sqlite_url(tmp_path, "r")) as srv:
        live = srv.service.triggers()
        for i, targets in enumerate([[], ["phone"], ["desktop"]]):
            await srv.stub.CreateReminder(pb.CreateReminderRequest(delay=delay(0.3 + 0.1 * i), content=f"r{i}",
                                                                   target_devices=targets))
        got = [await asyncio.wait_for(live.get(), 5) for _ in range(3)]
        live.close()
        cursors = sorted(t.cursor for t in got)
        assert cursors == list(range(cursors[0], cursors[0] + 3))
        relay = Relay(srv.address)
        relay.cursor = cursors[0]
        assert [t.cursor for t in await relay.session()] == cursors[1:]
        async with asyncio.timeout(5):
            events = []
            async for e in srv.service.watch(0, device_id="phone"):
                events.append(e)
                if type(e).__name__ == "CaughtUp":
                    break
        assert [getattr(e, "content", None) for e in events] == ["r0", "r1", None]


async def test_downtime_catch_up_fires_recent_and_reports_old_occurrences(tmp_path: Path) -> None:
    """Occurrences due while the server was down are logged once: within grace FIRED, older MISSED."""
    url = sqlite_url(tmp_path, "r")
    async with reminder_server(url, misfire_grace_s=300) as srv:
        cron = pb.CronSchedule(minute="*", hour="*")
        r = (await srv.stub.CreateReminder(pb.CreateReminderRequest(cron=cron, content="tick"))).reminder
        before = await srv.service.last_cursor()
        db = srv.service._db()
    # Pretend the server went down 20 minutes ago (the reminder existed then).
    twenty_ago = datetime.now(UTC) - timedelta(minutes=20)
    from server.storage.db import Database

    side = Database(url)
    await side.run(lambda s: s.execute(update(ReminderRow).where(ReminderRow.id == r.id)
                                       .values(checked_until=twenty_ago, created_at=twenty_ago)))
    for _ in range(2):  # a second restart must not log anything again
        async with reminder_server(url, misfire_grace_s=300) as srv:
            db = srv.service._db()
            rows = await db.run(lambda s: list(s.execute(
                select(TriggerRow.status, func.count()).where(TriggerRow.reminder_id == r.id)
                .group_by(TriggerRow.status))))
            counts = dict(rows)
            assert counts["missed"] in (14, 15, 16) and counts["fired"] in (4, 5, 6)
            assert counts["missed"] + counts["fired"] in (19, 20)
            dupes = await db.run(lambda s: s.execute(
                select(func.count()).select_from(TriggerRow).where(TriggerRow.cursor > before)).scalar_one())
            assert dupes == counts["missed"] + counts["fired"]
    side.dispose()


async def test_watchers_see_triggers_logged_by_another_core_sharing_the_database(tmp_path: Path) -> None:
    from server.reminders.service import ReminderService
    from server.reminders.store import Trigger

    url = sqlite_url(tmp_path, "shared")
    core_a, core_b = ReminderService(), ReminderService()
    await core_a.open(url, jobs_table="jobs_a")
    await core_b.open(url, jobs_table="jobs_b")
    try:
        async def first_trigger() -> Trigger:
            async for event in core_a.watch(None, poll_s=0.2):
                if isinstance(event, Trigger):
                    return event
            raise AssertionError("stream ended")

        watcher = asyncio.ensure_future(first_trigger())
        await asyncio.sleep(0.1)
        made = await core_b.create(content="from b", delay=timedelta(seconds=0.3))
        trigger = await asyncio.wait_for(watcher, 5)
        assert (trigger.reminder_id, trigger.content) == (made.id, "from b")
    finally:
        await core_b.stop()
        await core_a.stop()
