"""A lease row in the database: which of several instances on one database runs the clock.

APScheduler 3 cannot share a job store between running schedulers (each one
fires every due job, and one removing a job the other is updating kills the
other's loop). So among ReminderService instances on one database exactly
one scheduler runs: the holder of the `scheduler` lease. It renews the lease
every third of its term; the others try to take it on the same beat, and one
does as soon as the term ends (a crashed leader is replaced within one term
plus one beat). Firing stays exact even if two leaders overlap for a moment:
an occurrence is logged under the reminder's row lock and the log's unique
(reminder, due time) constraint, so a second firing of it logs nothing.

Both statements are single conditional UPDATEs (or an INSERT for the first
holder), atomic on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.reminders.store import LeaseRow, to_db

SCHEDULER_LEASE = "scheduler"


def try_hold(s: Session, holder: str, now: datetime, term: timedelta, name: str = SCHEDULER_LEASE) -> bool:
    """Renew the lease when `holder` has it, take it when it has expired; True when `holder` holds it now."""
    taken = s.execute(update(LeaseRow)
                      .where(LeaseRow.name == name, or_(LeaseRow.holder == holder, LeaseRow.expires_at < to_db(now)))
                      .values(holder=holder, expires_at=to_db(now + term)))
    if taken.rowcount:  # type: ignore[attr-defined]
        return True
    if s.get(LeaseRow, name) is not None:
        return False  # another instance holds it
    try:
        with s.begin_nested():
            s.add(LeaseRow(name=name, holder=holder, expires_at=to_db(now + term)))
    except IntegrityError:  # another instance created it first
        return False
    return True


def release(s: Session, holder: str, name: str = SCHEDULER_LEASE) -> None:
    """Give the lease up at a clean stop, so another instance takes over at once."""
    s.execute(update(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder)
              .values(expires_at=datetime(1970, 1, 1)))
