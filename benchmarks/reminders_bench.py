"""Reminders, NIT and time parsing: cheap figures (run: .venv/bin/python benchmarks/reminders_bench.py).

- phrase parsing: mean time per zh/en reminder phrase
- fire latency: due time → trigger logged (fired_time) → received by an in-process watcher,
  for reminders due together (SQLite, APScheduler BackgroundScheduler)
- catch-up: occurrences logged at start-up after downtime, and replay rate of WatchReminders from cursor 0
- NIT: parse time of a 10-statement script
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from server.nit import parse
from server.reminders.service import ReminderService
from server.reminders.store import CaughtUp, ReminderRow, Trigger
from server.reminders.timeparse import CronSpec, parse_reminder
from server.storage.db import Database, sqlite_url

PHRASES = ["提醒我12点吃饭", "明天早上八点提醒我开会", "下午三点半提醒我去接孩子", "10分钟后提醒我喝水",
           "每个工作日早上9点提醒我打卡", "每周一三五晚上8点提醒我健身", "remind me in 10 minutes to stretch",
           "every weekday at 9 remind me to stand up", "remind me tomorrow at 9am to submit the report",
           "tonight at 8 remind me to watch the game"]
NIT = "\n".join(f'$v{i} = tool.n{i}(a="x", b=[1, 2, $v{i - 1}], c=3.5)' if i else '$v0 = start(q="s")'
                for i in range(10))


def bench_phrases(rounds: int = 200) -> None:
    now = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
    parse_reminder(PHRASES[0], now, "Asia/Shanghai")
    start = time.perf_counter()
    for _ in range(rounds):
        for phrase in PHRASES:
            parse_reminder(phrase, now, "Asia/Shanghai")
    per = (time.perf_counter() - start) / (rounds * len(PHRASES))
    print(f"phrase parsing: {per * 1e6:.0f} µs per phrase (mean over {rounds * len(PHRASES)})")


def bench_nit(rounds: int = 2000) -> None:
    start = time.perf_counter()
    for _ in range(rounds):
        parse(NIT)
    print(f"NIT parse (10 statements): {(time.perf_counter() - start) / rounds * 1e6:.0f} µs")


async def bench_fire(tmp: Path, count: int = 20) -> None:
    svc = ReminderService()
    await svc.open(sqlite_url(tmp, "fire"), timezone="UTC")
    received: dict[str, float] = {}
    try:
        due = datetime.now(UTC) + timedelta(seconds=2)
        ids = [(await svc.create(content=f"r{i}", due_time=due)).id for i in range(count)]
        triggers: list[Trigger] = []

        async def watch() -> None:
            async for event in svc.watch(None):
                if isinstance(event, Trigger):
                    received[event.reminder_id] = time.time()
                    triggers.append(event)
                    if len(triggers) == count:
                        return

        await asyncio.wait_for(watch(), 30)
        logged = [(t.fired_time - t.due_time).total_seconds() * 1000 for t in triggers]
        seen = [(received[i] - due.timestamp()) * 1000 for i in ids]
        print(f"fire latency, {count} reminders due at once: logged p50 {statistics.median(logged):.1f} ms, "
              f"max {max(logged):.1f} ms; watcher p50 {statistics.median(seen):.1f} ms, max {max(seen):.1f} ms")
    finally:
        await svc.stop()


async def bench_catch_up(tmp: Path, minutes: int = 480) -> None:
    url = sqlite_url(tmp, "catch")
    svc = ReminderService()
    await svc.open(url, timezone="UTC")
    r = await svc.create(content="tick", cron=CronSpec(minute="*"))
    await svc.stop()
    side = Database(url)
    past = datetime.now(UTC) - timedelta(minutes=minutes)
    await side.run(lambda s: s.execute(update(ReminderRow).where(ReminderRow.id == r.id)
                                       .values(checked_until=past)))
    side.dispose()
    svc = ReminderService()
    start = time.perf_counter()
    await svc.open(url, timezone="UTC")
    opened = time.perf_counter() - start
    try:
        start = time.perf_counter()
        n = 0
        async for event in svc.watch(0):
            if isinstance(event, CaughtUp):
                break
            n += 1
        replay = time.perf_counter() - start
        print(f"catch-up after {minutes} min down (every-minute cron): {n} occurrences logged in a "
              f"{opened * 1000:.0f} ms start-up; WatchReminders replay {n / replay:,.0f} triggers/s")
    finally:
        await svc.stop()


async def main() -> None:
    bench_phrases()
    bench_nit()
    with tempfile.TemporaryDirectory() as tmp:
        await bench_fire(Path(tmp))
        await bench_catch_up(Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
