"""When a reminder is due: one-shot times and cron schedules, on APScheduler triggers.

The trigger objects are APScheduler's own, so the job store and the catch-up
logic (which occurrences fell into a span while the server was down) agree on
every occurrence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from server.reminders.timeparse import WEEKDAY_NAMES, CronSpec, TimeParseError, zone

_CRONTAB_DOW = {"0": "sun", "7": "sun", **{str(i + 1): WEEKDAY_NAMES[i] for i in range(6)}}


def crontab_day_of_week(field: str) -> str:
    """Crontab weekday numbers (0/7 = Sunday) → APScheduler names (its numbers start at Monday)."""
    return re.sub(r"(?<![/\d])[0-7](?!\d)", lambda m: _CRONTAB_DOW[m.group()], field.strip().lower()) or "*"


def normalise_cron(spec: CronSpec) -> CronSpec:
    """Fill defaults, translate weekday numbers, and validate by building the trigger."""
    out = CronSpec(minute=spec.minute.strip() or "0", hour=spec.hour.strip() or "*",
                   day_of_month=spec.day_of_month.strip() or "*", month=spec.month.strip() or "*",
                   day_of_week=crontab_day_of_week(spec.day_of_week))
    try:
        cron_trigger(out, "UTC")
    except ValueError as exc:
        raise TimeParseError(f"invalid cron schedule: {exc}") from exc
    return out


def cron_text(spec: CronSpec) -> str:
    return " ".join((spec.minute, spec.hour, spec.day_of_month, spec.month, spec.day_of_week))


def cron_from_text(text: str) -> CronSpec:
    minute, hour, dom, month, dow = text.split()
    return CronSpec(minute, hour, dom, month, dow)


def cron_trigger(spec: CronSpec, timezone: str) -> CronTrigger:
    return CronTrigger(minute=spec.minute, hour=spec.hour, day=spec.day_of_month, month=spec.month,
                       day_of_week=spec.day_of_week, timezone=zone(timezone))


@dataclass(frozen=True)
class Schedule:
    """A one-shot due time (UTC) or a cron schedule in a time zone."""

    timezone: str
    due_time: datetime | None = None
    cron: CronSpec | None = None

    def trigger(self) -> DateTrigger | CronTrigger:
        if self.cron is not None:
            return cron_trigger(self.cron, self.timezone)
        assert self.due_time is not None
        return DateTrigger(run_date=self.due_time, timezone=UTC)

    def next_after(self, t: datetime) -> datetime | None:
        """The first occurrence strictly after `t` (aware), in UTC."""
        if self.cron is None:
            assert self.due_time is not None
            return self.due_time if self.due_time > t else None
        nxt = cron_trigger(self.cron, self.timezone).get_next_fire_time(None, t + timedelta(microseconds=1))
        return None if nxt is None else nxt.astimezone(UTC)

    def occurrences(self, after: datetime, until: datetime, limit: int) -> list[datetime]:
        """Occurrences in (after, until], oldest first, at most `limit` (the newest ones kept)."""
        out: list[datetime] = []
        t = after
        while True:
            nxt = self.next_after(t)
            if nxt is None or nxt > until:
                return out[-limit:]
            out.append(nxt)
            if self.cron is None:
                return out
            t = nxt
