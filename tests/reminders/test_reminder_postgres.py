"""The reminder job store and trigger log on the local PostgreSQL (own schema per test)."""

from __future__ import annotations

from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from sqlalchemy import text

from peromesh.reminder.v1 import reminder_service_pb2 as pb
from tests.reminders.harness import Relay, reminder_server


async def test_postgres_job_store_fires_and_survives_restart(pg_url: str) -> None:
    d = Duration()
    d.FromTimedelta(timedelta(seconds=0.8))
    async with reminder_server(pg_url) as srv:
        assert srv.service._db().engine.dialect.name == "postgresql"
        relay = Relay(srv.address)
        await relay.session()
        fires = (await srv.stub.CreateReminder(pb.CreateReminderRequest(delay=d, content="stretch"))).reminder
        later = (await srv.stub.CreateReminder(pb.CreateReminderRequest(
            cron=pb.CronSchedule(minute="0", hour="3"), content="nightly"))).reminder
        jobs = await srv.service._db().run(lambda s: s.execute(text("SELECT id FROM reminder_jobs")).all())
        assert {j[0] for j in jobs} == {fires.id, later.id}
        got = await Relay(srv.address).session(until_caught_up_and=2.5)
        assert [t.reminder_id for t in got] == [fires.id]
    async with reminder_server(pg_url) as srv:
        relay.address = srv.address
        got = await relay.session(until_caught_up_and=1.0)
        assert [(t.reminder_id, t.status) for t in got] == [(fires.id, pb.TRIGGER_STATUS_FIRED)]
        active = (await srv.stub.ListReminders(pb.ListRemindersRequest())).reminders
        assert [r.id for r in active] == [later.id]
        jobs = await srv.service._db().run(lambda s: s.execute(text("SELECT id FROM reminder_jobs")).all())
        assert [j[0] for j in jobs] == [later.id]
