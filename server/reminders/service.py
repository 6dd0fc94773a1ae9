"""ReminderService: APScheduler is the clock, the trigger log is the truth.

Why the split: APScheduler 3 removes or advances a job in its store when it
*submits* the job, so a crash between that and our callback would lose an
occurrence, and a crash after our callback but before the store update would
run it twice. So the job callback does not carry the occurrence; it only says
"look at reminder X now". `_log_due` then logs every occurrence in
(checked_until, now] in one transaction (unique per reminder and due time)
and moves `checked_until`. At start-up every active reminder is caught up the
same way before the scheduler resumes, and its job is (re)placed in the job
store. Result: each occurrence is logged exactly once, late ones within the
misfire grace are FIRED (late), older ones are reported MISSED, none dropped.

Several instances may share one database (cores of a cluster): only the
holder of the scheduler lease (lease.py) runs its scheduler, and it catches up
when it takes over; every instance writes reminders and serves watchers.

Devices: each device's acknowledged cursor is kept (`device_cursor`,
`acknowledge`), so whoever delivers to devices replays what a device missed.
The gRPC face is servicer.py; the core wiring (flags, bindings) is wiring.py.

In-process API (for the bridge and the dialog), all on the core's event loop:
  await svc.create(content=..., due_time=|delay=|cron=..., target_devices=(), timezone=None) -> Reminder
  await svc.create_from_text(text, timezone=None, target_devices=(), validate_only=False)
        -> (Reminder, ParsedReminder)
  await svc.add_reminder(time, content, timezone=None) -> Reminder      # the LLM tool
  ADD_REMINDER_TOOL (JSON schema), await svc.call_add_reminder_tool(args) -> dict
  await svc.list_reminders(include_inactive=False) -> list[Reminder]
  await svc.cancel(reminder_id) -> Reminder
  svc.watch(after_cursor=None, device_id=None) -> AsyncIterator[Trigger | CaughtUp]
  await svc.device_cursor(device_id) -> int; await svc.acknowledge(device_id, cursor)
  svc.triggers() -> Subscription[Trigger]              # live triggers only
  svc.schedule_updates() -> Subscription[ScheduleUpdate]
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.aio import TaskOwner
from server.failpoints import failpoint
from server.fanout import Fanout, Subscription
from server.reminders import lease
from server.reminders.schedule import Schedule, cron_text, normalise_cron
from server.reminders.store import (
    TABLES,
    CaughtUp,
    DeviceCursorRow,
    Reminder,
    ReminderRow,
    ScheduleUpdate,
    Status,
    Trigger,
    TriggerRow,
    serialize_appends,
)
from server.reminders.timeparse import CronSpec, ParsedReminder, TimeParseError, parse_reminder, zone
from server.storage.db import Base, Database

log = logging.getLogger(__name__)

DEFAULT_MISFIRE_GRACE_S = 600.0
MAX_CATCH_UP = 500  # per reminder and wake-up; older ones are logged as skipped (not silently)
_PAGE = 500
POLL_S = 5.0  # the log tailer re-reads the log this often (triggers logged by another core)
WATCH_POLL_S = 60.0  # a watcher's own safety net (the tailer already feeds it what other cores log)
DEFAULT_LEASE_S = 10.0  # the scheduler lease's term: a dead leader is replaced within it (plus a beat)

# Services alive in this process, by job-store key (the job's pickled args name it); several
# instances on one database (tests of a cluster) share a key, and the leader among them fires.
_LIVE: dict[str, list[ReminderService]] = {}


def fire_job(key: str, reminder_id: str) -> None:
    """The APScheduler job (runs in a scheduler worker thread): hand over to the leader's loop."""
    service = next((s for s in _LIVE.get(key, ()) if s.is_leader), None)
    if service is None:
        log.warning("reminder %s is due but its service (%s) is not leading here", reminder_id, key)
        return
    service._wake_from_thread(reminder_id)


class _Clock(BackgroundScheduler):  # type: ignore[misc]  # APScheduler 3 is untyped
    """APScheduler's background scheduler, minus one pass over the jobs after shutdown.

    `shutdown` wakes the loop thread, which then processes due jobs once more
    with the executor already closed (and dies on the job it cannot remove).
    """

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None
        try:
            wait: float | None = super()._process_jobs()
        except JobLookupError:
            # Shut down during this pass (a lost lease): with the scheduler STOPPED, APScheduler
            # looks for the job it just ran among the pending ones only, and raises.
            if self.state == STATE_STOPPED:
                return None
            raise
        return wait


class _SharedJobStore(SQLAlchemyJobStore):  # type: ignore[misc]  # APScheduler 3 is untyped
    """The job table, tolerant of another instance having removed a job (a lease handover).

    APScheduler's loop thread dies on a JobLookupError from update/remove; a job
    that is gone is simply gone (its reminder's row says whether it is due).
    """

    def update_job(self, job: Any) -> None:
        with contextlib.suppress(JobLookupError):
            super().update_job(job)

    def remove_job(self, job_id: str) -> None:
        with contextlib.suppress(JobLookupError):
            super().remove_job(job_id)


def local_timezone() -> str:
    try:
        from tzlocal import get_localzone_name

        return get_localzone_name() or "UTC"
    except Exception:  # tzlocal may not find a zone in minimal containers
        return "UTC"


# The LLM tool (built-in; the hub lists it next to device capabilities).
ADD_REMINDER_TOOL: dict[str, Any] = {
    "name": "add_reminder",
    "description": "Schedule a reminder. `time` is ISO 8601 or a phrase such as '12:00', '明天早上八点', "
                   "'in 10 minutes', 'every weekday at 9'.",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["time", "content"],
                   "properties": {"time": {"type": "string", "minLength": 1},
                                  "content": {"type": "string", "minLength": 1, "maxLength": 2000}}},
}


class ReminderNotFound(KeyError):
    """No reminder has that id."""


class ReminderService:
    """The reminder domain: the trigger log, the clock, device delivery state; the in-process API."""

    name = "reminders"

    def __init__(self) -> None:
        self.db: Database | None = None
        self.default_timezone = "UTC"
        self.misfire_grace = timedelta(seconds=DEFAULT_MISFIRE_GRACE_S)
        self.lease_term = timedelta(seconds=DEFAULT_LEASE_S)
        self.is_leader = False
        self.instance_id = lease.holder_id()
        self._lease_name = lease.SCHEDULER_LEASE
        self._scheduler: BackgroundScheduler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._key = ""
        self._fire_lock = asyncio.Lock()
        self._triggers: Fanout[Trigger] = Fanout("reminder triggers")
        self._updates: Fanout[ScheduleUpdate] = Fanout("schedule updates")
        self._tasks = TaskOwner("reminders")
        self._published = 0  # the highest cursor published to live subscribers
        self._tail_wake = asyncio.Event()
        self.poll_s = POLL_S

    async def open(self, db_url: str, *, timezone: str = "UTC", misfire_grace_s: float = DEFAULT_MISFIRE_GRACE_S,
                   jobs_table: str = "reminder_jobs", lease_s: float = DEFAULT_LEASE_S) -> None:
        """Open the tables and the job store; when this instance leads (lease.py), catch up what fell
        due while down and start the clock. Others keep trying for the lease every lease_s / 3."""
        zone(timezone)
        self.default_timezone = timezone
        self.misfire_grace = timedelta(seconds=misfire_grace_s)
        self.lease_term = timedelta(seconds=lease_s)
        self._loop = asyncio.get_running_loop()
        self.db = Database(db_url)
        db = self.db
        await asyncio.to_thread(Base.metadata.create_all, db.engine, tables=TABLES)
        # Jobs name their service by a digest (the job table must not hold database credentials).
        self._key = hashlib.sha256(f"{db_url}#{jobs_table}".encode()).hexdigest()[:24]
        self._lease_name = f"{lease.SCHEDULER_LEASE}:{jobs_table}"  # one clock per job table
        self._scheduler = _Clock(
            jobstores={"default": _SharedJobStore(engine=db.engine, tablename=jobs_table)},
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=UTC)
        await asyncio.to_thread(self._scheduler.start, paused=True)
        _LIVE.setdefault(self._key, []).append(self)
        self._published = await self.last_cursor()
        self._tasks.spawn(self._tail(), "log-tail")
        await self._hold_lease()
        self._tasks.spawn(self._keep_lease(), "scheduler-lease")
        log.info("reminders: timezone %s, misfire grace %.0fs, %s", timezone, misfire_grace_s,
                 "leading the clock" if self.is_leader else "another instance leads the clock")

    async def stop(self) -> None:
        await self._tasks.close()
        if self._scheduler is not None:
            scheduler, self._scheduler = self._scheduler, None
            await asyncio.to_thread(scheduler.shutdown, wait=True)
        peers = _LIVE.get(self._key, [])
        if self in peers:
            peers.remove(self)
        if not peers:
            _LIVE.pop(self._key, None)
        if self.db is not None:
            if self.is_leader:
                with contextlib.suppress(Exception):  # best effort: otherwise the lease simply expires
                    await self.db.run(lambda s: lease.release(s, self.instance_id, self._lease_name))
            self.is_leader = False
            self.db.dispose()

    # ------------------------------------------------------------ the scheduler lease

    async def _keep_lease(self) -> None:
        beat = self.lease_term.total_seconds() / 3
        while True:
            await asyncio.sleep(beat)
            try:
                await self._hold_lease()
            except Exception:  # the database is away: stop leading (another may take over), retry next beat
                log.exception("reminders: renewing the scheduler lease failed")
                await self._follow()

    async def _hold_lease(self) -> None:
        now = datetime.now(UTC)
        held = await self._db().run(lambda s: lease.try_hold(s, self.instance_id, now, self.lease_term,
                                                                 self._lease_name))
        if held and not self.is_leader:
            await self._lead()
        elif not held and self.is_leader:
            await self._follow()
        elif held and self._scheduler is not None:
            self._scheduler.wakeup()  # notice jobs that other instances added to the shared store

    async def _lead(self) -> None:
        """Took the lease: log what fell due meanwhile, (re)place every job, start the clock."""
        self.is_leader = True
        active = await self._db().run(
            lambda s: list(s.scalars(select(ReminderRow.id).where(ReminderRow.state == "active"))))
        for reminder_id in active:
            await self._wake(reminder_id)
            reminder = await self.get(reminder_id)
            if reminder.state == "active":
                await asyncio.to_thread(self._place_job, reminder)
        if self._scheduler is not None:
            await asyncio.to_thread(self._scheduler.resume)
        log.info("reminders: leading the clock (%d active)", len(active))

    async def _follow(self) -> None:
        if self.is_leader and self._scheduler is not None:
            await asyncio.to_thread(self._scheduler.pause)
            log.warning("reminders: lost the scheduler lease; another instance leads the clock")
        self.is_leader = False

    # ------------------------------------------------------------ in-process API

    async def create(self, *, content: str, due_time: datetime | None = None, delay: timedelta | None = None,
                     cron: CronSpec | None = None, target_devices: Sequence[str] = (),
                     timezone: str | None = None) -> Reminder:
        """Schedule a reminder; exactly one of due_time (aware), delay, cron. ValueError on bad input."""
        content = content.strip()
        if not content or len(content) > 2000:
            raise ValueError("content must be 1 to 2000 characters")
        if sum(x is not None for x in (due_time, delay, cron)) != 1:
            raise ValueError("give exactly one of due_time, delay, cron")
        tz = timezone or self.default_timezone
        zone(tz)
        now = datetime.now(UTC)
        if delay is not None:
            if delay <= timedelta(0):
                raise ValueError("delay must be positive")
            due_time = now + delay
        if due_time is not None:
            if due_time.tzinfo is None:
                raise ValueError("due_time must carry a time zone")
            due_time = due_time.astimezone(UTC)
            if due_time <= now:
                raise ValueError("due_time is in the past")
        spec = normalise_cron(cron) if cron is not None else None
        row = ReminderRow(id=uuid.uuid4().hex, content=content, due_time=due_time,
                          cron=cron_text(spec) if spec else None, timezone=tz,
                          targets=json.dumps(list(target_devices)), state="active", checked_until=now,
                          created_at=now)
        reminder = await self._db().run(lambda s: _add(s, row))
        await asyncio.to_thread(self._place_job, reminder)
        self._updates.publish(ScheduleUpdate("create", reminder.as_data()))
        return reminder

    async def create_from_text(self, text: str, timezone: str | None = None, target_devices: Sequence[str] = (),
                               validate_only: bool = False) -> tuple[Reminder, ParsedReminder]:
        """Parse a phrase ("明天早上八点提醒我开会") and schedule it (TimeParseError when unusable)."""
        tz = timezone or self.default_timezone
        parsed = parse_reminder(text, datetime.now(UTC), tz)
        if validate_only:
            schedule = Schedule(tz, due_time=parsed.due_time.astimezone(UTC) if parsed.due_time else None,
                                cron=parsed.cron)
            now = datetime.now(UTC)
            preview = Reminder("", parsed.content, schedule, tuple(target_devices), "active",
                               schedule.next_after(now), now)
            return preview, parsed
        reminder = await self.create(content=parsed.content, due_time=parsed.due_time, cron=parsed.cron,
                                     target_devices=target_devices, timezone=tz)
        return reminder, parsed

    async def add_reminder(self, time: str, content: str, timezone: str | None = None) -> Reminder:
        """The LLM tool: `time` is ISO 8601 or a phrase ("12:00", "明天8点", "in 10 minutes", "every day at 9")."""
        tz = timezone or self.default_timezone
        try:
            due = datetime.fromisoformat(time.strip())
        except ValueError:
            parsed = parse_reminder(time, datetime.now(UTC), tz)
            return await self.create(content=content, due_time=parsed.due_time, cron=parsed.cron, timezone=tz)
        if due.tzinfo is None:
            due = due.replace(tzinfo=zone(tz))
        return await self.create(content=content, due_time=due, timezone=tz)

    async def call_add_reminder_tool(self, args: dict[str, Any]) -> dict[str, Any]:
        """`add_reminder` as an LLM tool call: the reminder as JSON-ready data (ValueError on bad args)."""
        reminder = await self.add_reminder(str(args["time"]), str(args["content"]))
        return reminder.as_data()

    async def get(self, reminder_id: str) -> Reminder:
        def read(s: Session) -> Reminder:
            row = s.get(ReminderRow, reminder_id)
            if row is None:
                raise ReminderNotFound(reminder_id)
            return Reminder.from_row(row)

        return await self._db().run(read)

    async def list_reminders(self, include_inactive: bool = False) -> list[Reminder]:
        def read(s: Session) -> list[Reminder]:
            query = select(ReminderRow).order_by(ReminderRow.created_at.desc(), ReminderRow.id)
            if not include_inactive:
                query = query.where(ReminderRow.state == "active")
            return [Reminder.from_row(r) for r in s.scalars(query)]

        return await self._db().run(read)

    async def cancel(self, reminder_id: str) -> Reminder:
        """Cancel an active reminder (ReminderNotFound; ValueError when already done or cancelled)."""

        def write(s: Session) -> Reminder:
            row = s.get(ReminderRow, reminder_id, with_for_update=True)
            if row is None:
                raise ReminderNotFound(reminder_id)
            if row.state != "active":
                raise ValueError(f"reminder {reminder_id} is already {row.state}")
            row.state = "cancelled"
            return Reminder.from_row(row)

        async with self._fire_lock:
            reminder = await self._db().run(write)
        await asyncio.to_thread(self._drop_job, reminder_id)
        self._updates.publish(ScheduleUpdate("cancel", reminder.as_data()))
        return reminder

    async def watch(self, after_cursor: int | None = None, device_id: str | None = None,
                    poll_s: float = WATCH_POLL_S) -> AsyncIterator[Trigger | CaughtUp]:
        """Replay the log after `after_cursor` (None: nothing), yield CaughtUp, then live triggers.

        Live triggers are every logged trigger in cursor order (`_tail`: this core's at once,
        other cores' within POLL_S); the log is also re-read every `poll_s` seconds.
        A live trigger right after the last cursor is yielded at once; one further ahead means
        something in between was logged elsewhere (another core), so the log is read first:
        cursors become visible in order (store.serialize_appends), so nothing is skipped.
        """
        with self._triggers.subscribe() as live:
            last = await self.last_cursor() if after_cursor is None else after_cursor
            async for old in self._replay(last):
                last = old.cursor
                if old.for_device(device_id):
                    yield old
            yield CaughtUp(last)
            while True:
                trigger: Trigger | None
                try:
                    trigger = await asyncio.wait_for(live.get(), poll_s)
                except TimeoutError:
                    trigger = None
                if trigger is None or live.overflowed or trigger.cursor > last + 1:
                    live.overflowed = False  # poll, a gap, or lost live events: the log has them, in order
                    async for missed in self._replay(last):
                        last = missed.cursor
                        if missed.for_device(device_id):
                            yield missed
                if trigger is None or trigger.cursor <= last:
                    continue
                last = trigger.cursor
                if trigger.for_device(device_id):
                    yield trigger

    def triggers(self) -> Subscription[Trigger]:
        """Live triggers from now on (the bridge's `reminder_trigger`, the dialog's spoken reminder)."""
        return self._triggers.subscribe()

    def schedule_updates(self) -> Subscription[ScheduleUpdate]:
        """Reminder set changes (the bridge's `schedule_update`)."""
        return self._updates.subscribe()

    async def device_cursor(self, device_id: str) -> int:
        """The highest cursor `device_id` has acknowledged; a device seen for the first time starts
        at the end of the log (it is owed nothing from before it existed)."""

        def read(s: Session) -> int:
            row = s.get(DeviceCursorRow, device_id)
            if row is not None:
                return row.cursor
            top = s.scalars(select(TriggerRow.cursor).order_by(TriggerRow.cursor.desc()).limit(1)).first() or 0
            s.merge(DeviceCursorRow(device_id=device_id, cursor=top, updated_at=datetime.now(UTC)))
            return top

        return await self._db().run(read)

    async def acknowledge(self, device_id: str, cursor: int) -> int:
        """The device has every trigger up to `cursor` (cumulative; an older ack changes nothing).
        Returns the device's cursor after the ack."""

        def write(s: Session) -> int:
            row = s.get(DeviceCursorRow, device_id, with_for_update=True)
            now = datetime.now(UTC)
            if row is None:
                s.add(DeviceCursorRow(device_id=device_id, cursor=cursor, updated_at=now))
                return cursor
            if cursor > row.cursor:
                row.cursor, row.updated_at = cursor, now
            return row.cursor

        return await self._db().run(write)

    async def last_cursor(self) -> int:
        def read(s: Session) -> int:
            top = s.scalars(select(TriggerRow.cursor).order_by(TriggerRow.cursor.desc()).limit(1)).first()
            return top or 0

        return await self._db().run(read)

    async def triggers_after(self, cursor: int, limit: int = _PAGE) -> list[Trigger]:
        def read(s: Session) -> list[Trigger]:
            rows = s.scalars(select(TriggerRow).where(TriggerRow.cursor > cursor)
                             .order_by(TriggerRow.cursor).limit(limit))
            return [Trigger.from_row(r) for r in rows]

        return await self._db().run(read)

    # ------------------------------------------------------------ firing

    async def _replay(self, after: int) -> AsyncIterator[Trigger]:
        while True:
            page = await self.triggers_after(after)
            for trigger in page:
                yield trigger
            if len(page) < _PAGE:
                return
            after = page[-1].cursor

    def _wake_from_thread(self, reminder_id: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self._wake(reminder_id), loop)
        try:
            future.result(timeout=60)
        except Exception:
            log.exception("reminder %s: firing failed (it is retried at the next start-up)", reminder_id)

    async def _wake(self, reminder_id: str) -> None:
        """Log every occurrence of the reminder due by now, then publish them."""
        async with self._fire_lock:
            now = datetime.now(UTC)
            new, finished = await self._db().run(lambda s: self._log_due(s, reminder_id, now))
        if new:
            failpoint("reminder.after_fire")  # logged (committed), not yet published to anyone
        for trigger in new:
            log.info("reminder %s %s (due %s): %s", trigger.reminder_id, trigger.status,
                     trigger.due_time.isoformat(), trigger.content)
        if new:
            self._tail_wake.set()
        if finished is not None:
            self._updates.publish(ScheduleUpdate("done", finished.as_data()))

    async def _tail(self) -> None:
        """Publish every logged trigger once, in cursor order, to live subscribers: this core's at
        once (`_wake` wakes it), other cores' within POLL_S. One reader of the log per core, not
        one per watcher (a thousand attached devices must not poll the database each)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tail_wake.wait(), self.poll_s)
            self._tail_wake.clear()
            try:
                async for trigger in self._replay(self._published):
                    self._published = trigger.cursor
                    self._triggers.publish(trigger)
            except Exception:  # the database is away: the next wake-up or poll reads on
                log.exception("reminders: reading the trigger log failed")

    def _log_due(self, s: Session, reminder_id: str, now: datetime) -> tuple[list[Trigger], Reminder | None]:
        row = s.get(ReminderRow, reminder_id, with_for_update=True)
        if row is None or row.state != "active":
            return [], None
        schedule = row.schedule()
        checked = row.checked_until
        due = schedule.occurrences(checked, now, limit=MAX_CATCH_UP + 1)
        if len(due) > MAX_CATCH_UP:
            log.warning("reminder %s: more than %d occurrences while down; logging the newest %d",
                        reminder_id, MAX_CATCH_UP, MAX_CATCH_UP)
            due = due[-MAX_CATCH_UP:]
        logged = set(s.scalars(select(TriggerRow.due_time).where(
            TriggerRow.reminder_id == reminder_id, TriggerRow.due_time.in_(due)))) if due else set()
        rows: list[TriggerRow] = []
        for when in (d.astimezone(UTC) for d in due):  # UTC like a row read back (Trigger.from_row below)
            if when in logged:
                continue
            status: Status = "fired" if now - when <= self.misfire_grace else "missed"
            rows.append(TriggerRow(reminder_id=reminder_id, content=row.content, due_time=when,
                                   fired_time=now, status=status, targets=row.targets))
        if rows:
            serialize_appends(s)
        s.add_all(rows)
        row.checked_until = now
        finished = None
        if schedule.next_after(now) is None:
            row.state = "done"
            finished = Reminder.from_row(row)
        s.flush()
        return [Trigger.from_row(r) for r in rows], finished

    # ------------------------------------------------------------ job store (called in threads)

    def _place_job(self, reminder: Reminder) -> None:
        scheduler = self._scheduler
        if scheduler is None or reminder.next_due_time is None:
            return
        scheduler.add_job(fire_job, trigger=reminder.schedule.trigger(), args=[self._key, reminder.id],
                          id=reminder.id, name=reminder.content[:60], replace_existing=True)

    def _drop_job(self, reminder_id: str) -> None:
        if self._scheduler is not None:
            with contextlib.suppress(JobLookupError):
                self._scheduler.remove_job(reminder_id)

    def _db(self) -> Database:
        if self.db is None:
            raise RuntimeError("reminder service is not open")
        return self.db


def _add(s: Session, row: ReminderRow) -> Reminder:
    s.add(row)
    s.flush()
    return Reminder.from_row(row)


__all__ = ["ADD_REMINDER_TOOL", "CaughtUp", "Reminder", "ReminderNotFound", "ReminderService", "ScheduleUpdate",
           "TimeParseError", "Trigger", "fire_job"]
