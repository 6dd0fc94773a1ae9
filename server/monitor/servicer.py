"""MonitorService over gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from peromesh.monitor.v1 import monitor_service_pb2 as pb
from peromesh.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from server.monitor.sampler import CpuMeter, StatsSample
from server.monitor.service import MonitorService
from server.rpc.errors import StatusError, status_errors


def stats_pb(s: StatsSample) -> pb.SystemStats:
    ts = Timestamp()
    ts.FromDatetime(s.sample_time.astimezone(UTC))
    return pb.SystemStats(
        sample_time=ts, cpu_percent=s.cpu_percent, cpu_count=s.cpu_count, memory_used_bytes=s.memory_used_bytes,
        memory_total_bytes=s.memory_total_bytes, memory_percent=s.memory_percent,
        process_rss_bytes=s.process_rss_bytes,
        gpus=[pb.GpuStats(index=g.index, name=g.name, utilization_percent=g.utilization_percent,
                          memory_used_bytes=g.memory_used_bytes, memory_total_bytes=g.memory_total_bytes)
              for g in s.gpus])


class MonitorServicer(pb_grpc.MonitorServiceServicer):
    def __init__(self, service: MonitorService) -> None:
        self.service = service

    @status_errors()
    async def GetSystemStats(self, request: pb.GetSystemStatsRequest,
                             context: grpc.aio.ServicerContext) -> pb.GetSystemStatsResponse:
        return pb.GetSystemStatsResponse(stats=stats_pb(await self.service.sample_now()))

    @status_errors()
    async def WatchSystemStats(self, request: pb.WatchSystemStatsRequest,
                               context: grpc.aio.ServicerContext) -> AsyncIterator[pb.WatchSystemStatsResponse]:
        if request.interval_ms < 0 or 0 < request.interval_ms < 100:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "interval_ms must be 0 or at least 100")
        if request.interval_ms == 0:  # the shared stream at the configured interval
            with self.service.stats() as stats:
                if self.service.latest is not None:
                    yield pb.WatchSystemStatsResponse(stats=stats_pb(self.service.latest))
                async for sample in stats:
                    yield pb.WatchSystemStatsResponse(stats=stats_pb(sample))
        meter = CpuMeter()  # this stream's own interval and CPU window
        interval = request.interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            yield pb.WatchSystemStatsResponse(stats=stats_pb(await self.service.sample_now(meter)))
