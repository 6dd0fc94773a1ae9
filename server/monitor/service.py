"""MonitorService: a sample every `--monitor-interval` seconds, to gRPC watchers and in-process subscribers.

In-process API (the bridge broadcasts `system_stats` from it):
  svc.stats() -> Subscription[StatsSample]     # one StatsSample per interval; .as_action() is the payload
  svc.latest -> StatsSample | None
  await svc.sample_now() -> StatsSample
The shared loop samples only while someone subscribes (a dashboard open, the
bridge broadcasting), so an idle mesh does no work for it.

This is the domain only (no grpc, no flags, no mesh): the gRPC mapping is
servicer.py, and hosting it on the core (flags, binding) is wiring.py.
"""

from __future__ import annotations

import asyncio
import logging

from server.aio import TaskOwner
from server.fanout import Fanout, Subscription
from server.monitor.sampler import CpuMeter, Sampler, StatsSample

log = logging.getLogger(__name__)
DEFAULT_INTERVAL_S = 5.0


class MonitorService:
    """The monitor's in-process API: open it with an interval, subscribe, stop it."""

    def __init__(self) -> None:
        self.interval_s = DEFAULT_INTERVAL_S
        self.latest: StatsSample | None = None
        self.sampler: Sampler | None = None
        self._fanout: Fanout[StatsSample] = Fanout("system stats", maxsize=16)
        self._owner = TaskOwner("monitor")
        self._wake = asyncio.Event()
        self._meter: CpuMeter | None = None

    async def open(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if interval_s < 0.1:
            raise ValueError("--monitor-interval must be at least 0.1 s")
        self.interval_s = interval_s
        self.sampler = await asyncio.to_thread(Sampler)
        self._meter = CpuMeter()
        self._owner.spawn(self._loop(), "sampler")

    async def stop(self) -> None:
        await self._owner.close()
        if self.sampler is not None:
            await asyncio.to_thread(self.sampler.gpus.close)

    def stats(self) -> Subscription[StatsSample]:
        sub = self._fanout.subscribe()
        self._wake.set()
        return sub

    async def sample_now(self, meter: CpuMeter | None = None) -> StatsSample:
        """A sample now; CPU since `meter`'s last reading (default: the service's own meter)."""
        if self.sampler is None or self._meter is None:
            raise RuntimeError("monitor is not open")
        return await asyncio.to_thread(self.sampler.sample, meter or self._meter)

    async def _loop(self) -> None:
        meter = CpuMeter()
        loop = asyncio.get_running_loop()
        while True:
            if not self._fanout.subscribers:
                self._wake.clear()
                await self._wake.wait()
                meter = CpuMeter()
                await asyncio.sleep(min(self.interval_s, 0.2))  # give the first CPU reading a window
            started = loop.time()
            try:
                self.latest = await self.sample_now(meter)
                self._fanout.publish(self.latest)
            except Exception:
                log.exception("system stats sample failed")
            await asyncio.sleep(max(0.0, self.interval_s - (loop.time() - started)))
