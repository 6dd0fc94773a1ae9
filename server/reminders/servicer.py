"""ReminderService over gRPC: a thin mapping onto the in-process `ReminderService`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from peromesh.reminder.v1 import reminder_service_pb2 as pb
from peromesh.reminder.v1 import reminder_service_pb2_grpc as pb_grpc
from server.reminders.service import ReminderNotFound, ReminderService
from server.reminders.store import CaughtUp, Reminder, Trigger
from server.reminders.timeparse import CronSpec, TimeParseError, describe
from server.rpc.errors import StatusError, status_errors

_STATES = {"active": pb.REMINDER_STATE_ACTIVE, "done": pb.REMINDER_STATE_DONE,
           "cancelled": pb.REMINDER_STATE_CANCELLED}
_STATUS = {"fired": pb.TRIGGER_STATUS_FIRED, "missed": pb.TRIGGER_STATUS_MISSED}


def timestamp(t: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(t.astimezone(UTC))
    return ts


def reminder_pb(r: Reminder) -> pb.Reminder:
    out = pb.Reminder(id=r.id, content=r.content, timezone=r.schedule.timezone,
                      target_devices=list(r.target_devices), state=_STATES[r.state],
                      create_time=timestamp(r.created_at))
    if r.schedule.cron is not None:
        c = r.schedule.cron
        out.cron.CopyFrom(pb.CronSchedule(minute=c.minute, hour=c.hour, day_of_month=c.day_of_month,
                                          month=c.month, day_of_week=c.day_of_week))
    elif r.schedule.due_time is not None:
        out.due_time.CopyFrom(timestamp(r.schedule.due_time))
    if r.next_due_time is not None:
        out.next_due_time.CopyFrom(timestamp(r.next_due_time))
    return out


def trigger_pb(t: Trigger) -> pb.ReminderTrigger:
    return pb.ReminderTrigger(cursor=t.cursor, reminder_id=t.reminder_id, content=t.content,
                              due_time=timestamp(t.due_time), fired_time=timestamp(t.fired_time),
                              status=_STATUS[t.status], target_devices=list(t.target_devices))



class ReminderServicer(pb_grpc.ReminderServiceServicer):
    def __init__(self, service: ReminderService) -> None:
        self.service = service

    @status_errors()
    async def CreateReminder(self, request: pb.CreateReminderRequest,
                             context: grpc.aio.ServicerContext) -> pb.CreateReminderResponse:
        kind = request.WhichOneof("schedule")
        try:
            if kind == "due_time":
                reminder = await self.service.create(
                    content=request.content, due_time=request.due_time.ToDatetime(tzinfo=UTC),
                    target_devices=request.target_devices, timezone=request.timezone or None)
            elif kind == "delay":
                reminder = await self.service.create(
                    content=request.content, delay=request.delay.ToTimedelta(),
                    target_devices=request.target_devices, timezone=request.timezone or None)
            elif kind == "cron":
                c = request.cron
                reminder = await self.service.create(
                    content=request.content, cron=CronSpec(c.minute, c.hour, c.day_of_month, c.month, c.day_of_week),
                    target_devices=request.target_devices, timezone=request.timezone or None)
            else:
                raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "schedule: give due_time, delay or cron")
        except ValueError as exc:  # TimeParseError included
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        return pb.CreateReminderResponse(reminder=reminder_pb(reminder))

    @status_errors()
    async def CreateReminderFromText(self, request: pb.CreateReminderFromTextRequest,
                                     context: grpc.aio.ServicerContext) -> pb.CreateReminderFromTextResponse:
        try:
            reminder, parsed = await self.service.create_from_text(
                request.text, timezone=request.timezone or None, target_devices=request.target_devices,
                validate_only=request.validate_only)
        except (TimeParseError, ValueError) as exc:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, f"cannot read {request.text!r}: {exc}") from None
        return pb.CreateReminderFromTextResponse(reminder=reminder_pb(reminder), time_phrase=parsed.time_phrase,
                                                 confirmation=describe(parsed))

    @status_errors()
    async def ListReminders(self, request: pb.ListRemindersRequest,
                            context: grpc.aio.ServicerContext) -> pb.ListRemindersResponse:
        reminders = await self.service.list_reminders(include_inactive=request.include_inactive)
        return pb.ListRemindersResponse(reminders=[reminder_pb(r) for r in reminders])

    @status_errors()
    async def CancelReminder(self, request: pb.CancelReminderRequest,
                             context: grpc.aio.ServicerContext) -> pb.CancelReminderResponse:
        try:
            reminder = await self.service.cancel(request.id)
        except ReminderNotFound:
            raise StatusError(grpc.StatusCode.NOT_FOUND, f"no reminder {request.id!r}") from None
        except ValueError as exc:
            raise StatusError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        return pb.CancelReminderResponse(reminder=reminder_pb(reminder))

    @status_errors()
    async def WatchReminders(self, request: pb.WatchRemindersRequest,
                             context: grpc.aio.ServicerContext) -> AsyncIterator[pb.WatchRemindersResponse]:
        after = request.after_cursor if request.HasField("after_cursor") else None
        if after is not None and after < 0:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "after_cursor must be >= 0")
        async for event in self.service.watch(after, request.device_id or None):
            if isinstance(event, CaughtUp):
                yield pb.WatchRemindersResponse(caught_up=pb.CaughtUp(cursor=event.cursor))
            else:
                yield pb.WatchRemindersResponse(trigger=trigger_pb(event))
