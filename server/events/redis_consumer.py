"""A Redis Streams consumer-group worker: read → handle → XACK, with retries and a dead-letter stream.

Failed entries stay in the group's pending list and are re-claimed
(XAUTOCLAIM) after `retry_idle_ms`. A handler raises only for "retry later"
(the memory server is down), so an outage must not cost events: an entry
moves to `<stream>.dead` with its error only once it was delivered
`max_deliveries` times AND has been in the stream for `dead_after_s` — the
backlog (XPENDING) never hides a poison event forever, and an hour-long outage
loses nothing. A stream that keeps failing is one warning per outage
(`FailureStreak`), not one per entry. A handler raising `InProgressElsewhere`
(its event is being handled by another consumer, see `dedupe.py`) leaves the
entry pending without counting it as a failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from server.events.bus import Handler
from server.events.dedupe import InProgressElsewhere
from server.events.retry import FailureStreak

log = logging.getLogger(__name__)


class StreamConsumer:
    def __init__(self, client: Any, stream: str, group: str, consumer: str, handler: Handler,
                 block_ms: int = 1000, retry_idle_ms: int = 5000, max_deliveries: int = 5,
                 streak: FailureStreak | None = None, dead_after_s: float = 3600.0) -> None:
        self.client = client  # redis.asyncio.Redis with decode_responses=True
        self.stream, self.group, self.consumer = stream, group, consumer
        self.handler = handler
        self.block_ms, self.retry_idle_ms, self.max_deliveries = block_ms, retry_idle_ms, max_deliveries
        self.handled = 0
        self.dead_after_s = dead_after_s
        self.streak = streak or FailureStreak(f"consumer {stream}/{group}", log)  # Redis itself
        self.handling = FailureStreak(f"handler of {stream}/{group}", log)  # what the handler reaches (memory)

    async def ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except Exception as exc:  # BUSYGROUP: it exists already
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        """Consume until cancelled; Redis being down (also at start) only delays it."""
        grouped = False
        while True:
            try:
                if not grouped:  # at start, and after a failure (the stream may have been recreated)
                    await self.ensure_group()
                    grouped = True
                await self.step()
            except Exception as exc:  # Redis down: keep trying, the entries wait in the stream
                grouped = False
                await asyncio.sleep(self.streak.failed(exc))
                continue
            self.streak.succeeded()

    async def step(self) -> int:
        """Reclaim stale pending entries, then read new ones; returns how many were handled."""
        done = 0
        claimed = await self.client.xautoclaim(self.stream, self.group, self.consumer,
                                               min_idle_time=self.retry_idle_ms, start_id="0-0", count=20)
        for entry_id, fields in claimed[1]:
            if fields:
                done += await self._handle(entry_id, fields)
        batches = await self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=20,
                                               block=self.block_ms)
        for _stream, entries in batches or []:
            for entry_id, fields in entries:
                done += await self._handle(entry_id, fields)
        return done

    async def _handle(self, entry_id: str, fields: dict[str, str]) -> int:
        try:
            await self.handler(fields)
        except InProgressElsewhere:
            log.debug("%s %s is being handled elsewhere; left pending", self.stream, entry_id)
            return 0
        except Exception as exc:
            self.handling.failed(exc)
            deliveries = await self._deliveries(entry_id)
            if deliveries < self.max_deliveries or _age_s(entry_id) < self.dead_after_s:
                log.debug("%s %s failed (delivery %d), will retry: %s", self.stream, entry_id, deliveries, exc)
                return 0
            await self.client.xadd(f"{self.stream}.dead", {**fields, "error": str(exc)[:500], "entry": entry_id})
            log.error("%s %s dead-lettered after %d deliveries: %s", self.stream, entry_id, deliveries, exc)
        else:
            self.handling.succeeded()
        await self.client.xack(self.stream, self.group, entry_id)
        self.handled += 1
        return 1

    async def _deliveries(self, entry_id: str) -> int:
        info = await self.client.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1)
        return int(info[0]["times_delivered"]) if info else 1

    async def pending(self) -> int:
        """Entries delivered to the group but not acknowledged (the visible backlog)."""
        summary = await self.client.xpending(self.stream, self.group)
        return int(summary["pending"])


def _age_s(entry_id: str) -> float:
    """Seconds since the entry was added (its id starts with the Redis server's clock in ms)."""
    return max(0.0, time.time() - int(entry_id.partition("-")[0]) / 1000)
