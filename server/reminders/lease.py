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

A holder names its host and process (`holder_id`). A lease held by a process
of this host that no longer exists (kill -9, then a restart on the same data)
is taken at once instead of after its term, so a restarted core catches up
immediately. Both statements are single conditional UPDATEs (or an INSERT for
the first holder), atomic on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.reminders.store import LeaseRow

SCHEDULER_LEASE = "scheduler"


def holder_id() -> str:
    """host:pid:random, so a dead process of this host can be recognised (`_dead_here`)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _dead_here(holder: str) -> bool:
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def try_hold(s: Session, holder: str, now: datetime, term: timedelta, name: str = SCHEDULER_LEASE) -> bool:
    """Renew the lease when `holder` has it, take it when it has expired; True when `holder` holds it now."""
    taken = s.execute(update(LeaseRow)
                      .where(LeaseRow.name == name, or_(LeaseRow.holder == holder, LeaseRow.expires_at < now))
                      .values(holder=holder, expires_at=now + term))
    if taken.rowcount:  # type: ignore[attr-defined]
        return True
    row = s.get(LeaseRow, name)
    if row is not None:
        if not _dead_here(row.holder):
            return False  # another instance holds it
        taken = s.execute(update(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == row.holder)
                          .values(holder=holder, expires_at=now + term))
        return bool(taken.rowcount)  # type: ignore[attr-defined]
    try:
        with s.begin_nested():
            s.add(LeaseRow(name=name, holder=holder, expires_at=now + term))
    except IntegrityError:  # another instance created it first
        return False
    return True


def release(s: Session, holder: str, name: str = SCHEDULER_LEASE) -> None:
    """Give the lease up at a clean stop, so another instance takes over at once."""
    s.execute(update(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder)
              .values(expires_at=datetime(1970, 1, 1, tzinfo=UTC)))
