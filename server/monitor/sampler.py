"""One sample of the host: CPU, memory, this process's RSS, NVIDIA GPUs when present.

Blocking calls (psutil, NVML); call `Sampler.sample` through a thread. CPU
percent is measured per `CpuMeter` (since that meter's previous reading), not
with psutil's process-global `cpu_percent()` state, so streams with different
intervals do not disturb each other. Without an NVIDIA driver, NVML fails to
initialise once and `gpus` stays empty: no error, no retry storm.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psutil

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuSample:
    index: int
    name: str
    utilization_percent: float
    memory_used_bytes: int
    memory_total_bytes: int


@dataclass(frozen=True)
class StatsSample:
    sample_time: datetime
    cpu_percent: float
    cpu_count: int
    memory_used_bytes: int
    memory_total_bytes: int
    memory_percent: float
    process_rss_bytes: int
    gpus: tuple[GpuSample, ...] = ()

    def as_action(self) -> dict[str, Any]:
        """The gateway `system_stats` payload."""
        return {"time": self.sample_time.isoformat(), "cpu_percent": round(self.cpu_percent, 1),
                "cpu_count": self.cpu_count, "memory_used": self.memory_used_bytes,
                "memory_total": self.memory_total_bytes, "memory_percent": round(self.memory_percent, 1),
                "process_rss": self.process_rss_bytes,
                "gpus": [{"index": g.index, "name": g.name, "utilization_percent": g.utilization_percent,
                          "memory_used": g.memory_used_bytes, "memory_total": g.memory_total_bytes}
                         for g in self.gpus]}


class CpuMeter:
    """Whole-machine CPU busy share since this meter's previous reading."""

    def __init__(self) -> None:
        self._last = psutil.cpu_times()

    def percent(self) -> float:
        now = psutil.cpu_times()
        last, self._last = self._last, now
        total = sum(now) - sum(last)
        idle = (now.idle + getattr(now, "iowait", 0.0)) - (last.idle + getattr(last, "iowait", 0.0))
        if total <= 0:
            return 0.0
        return max(0.0, min(100.0, 100.0 * (total - idle) / total))


class GpuProbe:
    """NVML, initialised once; `available` is False where no NVIDIA driver/GPU is present."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        self.available = False
        self._handles: list[Any] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            self.available = bool(self._handles)
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ImportError ...
            log.info("no NVIDIA GPU statistics: %s", exc)

    def sample(self) -> tuple[GpuSample, ...]:
        if not self.available:
            return ()
        out = []
        with self._lock:
            for i, handle in enumerate(self._handles):
                try:
                    util = self._nvml.nvmlDeviceGetUtilizationRates(handle)
                    mem = self._nvml.nvmlDeviceGetMemoryInfo(handle)
                    name = self._nvml.nvmlDeviceGetName(handle)
                except Exception as exc:
                    log.warning("GPU %d: %s", i, exc)
                    continue
                out.append(GpuSample(i, name.decode() if isinstance(name, bytes) else str(name),
                                     float(util.gpu), int(mem.used), int(mem.total)))
        return tuple(out)

    def close(self) -> None:
        if self.available:
            self.available = False
            try:
                self._nvml.nvmlShutdown()
            except Exception as exc:
                log.debug("nvmlShutdown: %s", exc)


class Sampler:
    """Samples the host (blocking)."""

    def __init__(self, gpus: GpuProbe | None = None) -> None:
        self.gpus = gpus or GpuProbe()
        self._process = psutil.Process()
        self._cpu_count = psutil.cpu_count() or 1

    def sample(self, cpu: CpuMeter) -> StatsSample:
        mem = psutil.virtual_memory()
        return StatsSample(sample_time=datetime.now(UTC), cpu_percent=cpu.percent(), cpu_count=self._cpu_count,
                           memory_used_bytes=int(mem.total - mem.available), memory_total_bytes=int(mem.total),
                           memory_percent=float(mem.percent), process_rss_bytes=int(self._process.memory_info().rss),
                           gpus=self.gpus.sample())
