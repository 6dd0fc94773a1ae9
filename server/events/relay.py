"""The relay: committed outbox events → the bus, at least once, with retries and a visible backlog.

One relay per database is the intent; several are safe (an event may then be
published twice, which consumers tolerate: they are idempotent by event id,
see `dedupe.py`). Failed publishes back off exponentially per event, so one
bad event does not stall the stream behind it for long. A failing database
does not end the relay either: `run` retries with bounded backoff (one log
line per outage, `retry.py`) and picks up where it stopped; a bus or consumer
that keeps refusing one stream is likewise one warning per outage. Delivered rows
are pruned once older than the configured retention.

The backlog (committed, not yet delivered) is visible three ways: `backlog()`,
`last_backlog` (refreshed at most every `backlog_interval_s`, no query), and the
OpenTelemetry gauge `peromesh.outbox.backlog` (summed over this process's relays).

Lean under load: a notify wakes the relay at once, but cycles start at most every
`min_interval_s`, so the events of many turns move in one batch; the batch is read and
its outcome recorded through the database's group commit (`Database.grouped`, sharing
transactions with the turns' writes), delivered rows marked with one UPDATE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from server.events.bus import EventBus
from server.events.config import EventsConfig
from server.events.outbox import OutboxEvent
from server.events.retry import FailureStreak
from server.failpoints import failpoint
from server.storage.db import Database

log = logging.getLogger(__name__)
_relays: weakref.WeakSet[OutboxRelay] = weakref.WeakSet()


def _observe_backlog(_options: CallbackOptions) -> Iterable[Observation]:
    """Gauge callback: reads the cached counts only (it may run on any thread, never queries)."""
    relays = list(_relays)
    if relays:
        yield Observation(sum(r.last_backlog for r in relays))


_meter = metrics.get_meter("peromesh.events")
_published = _meter.create_counter("peromesh.outbox.published", description="events handed to the bus")
_failed = _meter.create_counter("peromesh.outbox.failed", description="failed publish attempts")
_pruned = _meter.create_counter("peromesh.outbox.pruned", description="delivered events deleted after retention")
_meter.create_observable_gauge("peromesh.outbox.backlog", callbacks=[_observe_backlog],
                               description="outbox events committed but not yet delivered")


class OutboxRelay:
    def __init__(self, db: Database, bus: EventBus, batch: int = 100, poll_s: float = 1.0,
                 max_backoff_s: float = 60.0, config: EventsConfig | None = None, min_interval_s: float = 0.05,
                 backlog_interval_s: float = 1.0) -> None:
        self.db = db
        self.bus = bus
        self.batch = batch
        self.poll_s = poll_s
        self.min_interval_s = min_interval_s  # between cycle starts: a burst of notifies is one batch
        self.backlog_interval_s = backlog_interval_s  # how stale `last_backlog` may get (it is a count query)
        self.max_backoff_s = max_backoff_s  # per event, between failed publishes
        self.config = config or EventsConfig()
        self.streak = FailureStreak("outbox relay", log, self.config.retry_base_s, self.config.retry_max_s)
        self.last_backlog = 0
        self._publish_streaks: dict[str, FailureStreak] = {}  # one per stream (a handful)
        self._wake = asyncio.Event()
        self._next_prune = 0.0  # monotonic; the first cycle prunes
        self._next_backlog = 0.0  # monotonic; the first cycle counts
        _relays.add(self)

    def notify(self) -> None:
        """New events were committed: relay them now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled; a database (or any) error only delays the next cycle."""
        while True:
            started = time.monotonic()
            try:
                delivered = await self.cycle()
            except Exception as exc:
                await asyncio.sleep(self.streak.failed(exc))
                continue
            self.streak.succeeded()
            if delivered < self.batch:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
            await asyncio.sleep(max(0.0, started + self.min_interval_s - time.monotonic()))

    async def cycle(self) -> int:
        """One pass of `run`: relay a batch, prune when due, refresh the backlog figure when due."""
        delivered = await self.relay_once()
        if time.monotonic() >= self._next_prune:
            await self.prune()
            self._next_prune = time.monotonic() + self.config.prune_interval_s
        if time.monotonic() >= self._next_backlog:
            self.last_backlog = await self.backlog()
            self._next_backlog = time.monotonic() + self.backlog_interval_s
        return delivered

    async def relay_once(self) -> int:
        """Publish one batch of due events; returns how many were delivered.

        Outcomes are recorded in one transaction per batch. A crash between a
        publish and that commit republishes the event: delivery is at least once.
        """
        due = await self.db.grouped(self._due)
        delivered: list[int] = []
        failed: dict[int, str] = {}
        for row in due:
            try:
                await self.bus.publish(row.stream, row.fields())
            except Exception as exc:
                _failed.add(1, {"stream": row.stream})
                failed[row.id] = str(exc)[:500]
                self._publishing(row.stream).failed(exc)
                log.debug("outbox %d → %s failed (attempt %d): %s", row.id, row.stream, row.attempts + 1, exc,
                          extra={"corr": row.correlation_id})
                continue
            _published.add(1, {"stream": row.stream})
            self._publishing(row.stream).succeeded()
            delivered.append(row.id)
        if due:
            failpoint("relay.after_publish")  # handed over, not recorded: the next relay publishes them again
            await self.db.grouped(lambda s: self._record(s, delivered, failed))
        return len(delivered)

    def _publishing(self, stream: str) -> FailureStreak:
        """The publish streak of one stream: a bus or consumer that is down is one warning, not one per event."""
        streak = self._publish_streaks.get(stream)
        if streak is None:
            streak = self._publish_streaks[stream] = FailureStreak(f"outbox → {self.bus.name} {stream}", log)
        return streak

    def _due(self, session: Session) -> list[OutboxEvent]:
        now = datetime.now(UTC)
        stmt = (select(OutboxEvent).where(OutboxEvent.delivered_at.is_(None), OutboxEvent.next_attempt_at <= now)
                .order_by(OutboxEvent.id).limit(self.batch))
        return list(session.scalars(stmt))  # detached once the (group's) session closes, loaded in full

    def _record(self, session: Session, delivered: list[int], failed: dict[int, str]) -> None:
        now = datetime.now(UTC)
        if delivered:  # the common case, one statement for the batch
            session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(delivered))
                            .values(attempts=OutboxEvent.attempts + 1, delivered_at=now)
                            .execution_options(synchronize_session=False))
        if not failed:
            return
        for row in session.scalars(select(OutboxEvent).where(OutboxEvent.id.in_(list(failed)))):
            row.attempts += 1
            row.last_error = failed[row.id]
            backoff = min(self.max_backoff_s, 0.5 * 2 ** min(row.attempts, 16))
            row.next_attempt_at = now + timedelta(seconds=backoff)

    async def prune(self) -> int:
        """Delete delivered events older than the retention; returns how many went."""
        cutoff = datetime.now(UTC) - self.config.outbox_retention

        def drop(s: Session) -> int:
            stmt = delete(OutboxEvent).where(OutboxEvent.delivered_at.is_not(None), OutboxEvent.delivered_at < cutoff)
            return int(s.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]

        pruned = await self.db.run(drop)
        if pruned:
            _pruned.add(pruned)
            log.info("outbox: pruned %d delivered events older than %s", pruned, self.config.outbox_retention)
        return pruned

    async def backlog(self) -> int:
        """Events committed but not yet delivered (what an operator watches)."""
        def count(s: Session) -> int:
            return int(s.scalar(select(func.count()).where(OutboxEvent.delivered_at.is_(None))) or 0)

        return await self.db.run(count)
