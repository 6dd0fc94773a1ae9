"""The relay: committed outbox events → the bus, at least once, with retries and a visible backlog.

One relay per database is the intent; several are safe (an event may then be
published twice, which consumers tolerate: they are idempotent by
correlation id). Failed publishes back off exponentially per event, so one
bad event does not stall the stream behind it for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from opentelemetry import metrics
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from peromesh.server.events.bus import EventBus
from peromesh.server.events.outbox import OutboxEvent
from peromesh.server.storage.db import Database

log = logging.getLogger(__name__)
_meter = metrics.get_meter("peromesh.events")
_published = _meter.create_counter("peromesh.outbox.published", description="events handed to the bus")
_failed = _meter.create_counter("peromesh.outbox.failed", description="failed publish attempts")


class OutboxRelay:
    def __init__(self, db: Database, bus: EventBus, batch: int = 100, poll_s: float = 1.0,
                 max_backoff_s: float = 60.0) -> None:
        self.db = db
        self.bus = bus
        self.batch = batch
        self.poll_s = poll_s
        self.max_backoff_s = max_backoff_s
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """New events were committed: relay them now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            delivered = await self.relay_once()
            if delivered < self.batch:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def relay_once(self) -> int:
        """Publish one batch of due events; returns how many were delivered.

        Outcomes are recorded in one transaction per batch. A crash between a
        publish and that commit republishes the event: delivery is at least once.
        """
        due = await self.db.run(self._due)
        delivered: list[int] = []
        failed: dict[int, str] = {}
        for row in due:
            try:
                await self.bus.publish(row.stream, row.fields())
            except Exception as exc:
                _failed.add(1, {"stream": row.stream})
                failed[row.id] = str(exc)[:500]
                log.warning("outbox %d → %s failed (attempt %d): %s", row.id, row.stream, row.attempts + 1, exc,
                            extra={"corr": row.correlation_id})
                continue
            _published.add(1, {"stream": row.stream})
            delivered.append(row.id)
        if due:
            await self.db.run(lambda s: self._record(s, delivered, failed))
        return len(delivered)

    def _due(self, session: Session) -> list[OutboxEvent]:
        now = datetime.now(UTC)
        stmt = (select(OutboxEvent).where(OutboxEvent.delivered_at.is_(None), OutboxEvent.next_attempt_at <= now)
                .order_by(OutboxEvent.id).limit(self.batch))
        rows = list(session.scalars(stmt))
        session.expunge_all()
        return rows

    def _record(self, session: Session, delivered: list[int], failed: dict[int, str]) -> None:
        now = datetime.now(UTC)
        for row in session.scalars(select(OutboxEvent).where(OutboxEvent.id.in_([*delivered, *failed]))):
            row.attempts += 1
            if row.id in failed:
                row.last_error = failed[row.id]
                backoff = min(self.max_backoff_s, 0.5 * 2 ** min(row.attempts, 16))
                row.next_attempt_at = now + timedelta(seconds=backoff)
            else:
                row.delivered_at = now

    async def backlog(self) -> int:
        """Events committed but not yet delivered (what an operator watches)."""
        def count(s: Session) -> int:
            return int(s.scalar(select(func.count()).where(OutboxEvent.delivered_at.is_(None))) or 0)

        return await self.db.run(count)
