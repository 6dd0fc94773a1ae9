"""MonitorService over real gRPC: sane samples at the requested interval; no GPU → empty, no error."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import psutil
import pytest

from peromesh.monitor.v1 import monitor_service_pb2 as pb
from peromesh.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from server.monitor.sampler import GpuProbe
from server.monitor.service import MonitorService
from server.monitor.servicer import MonitorServicer
from server.rpc.channels import open_channel
from server.rpc.serving import ServiceBinding, start_server
from tests.meshkit import TEST_TOKEN

HAS_NVIDIA = os.path.exists("/dev/nvidia0") and shutil.which("nvidia-smi") is not None


@asynccontextmanager
async def monitor_server(interval_s: float) -> AsyncIterator[tuple[MonitorService, pb_grpc.MonitorServiceStub]]:
    service = MonitorService()
    await service.open(interval_s)
    binding = ServiceBinding("peromesh.monitor.v1.MonitorService", pb_grpc.add_MonitorServiceServicer_to_server,
                             MonitorServicer(service))
    server = await start_server("monitor-test", [binding], "127.0.0.1", 0, TEST_TOKEN)
    channel = open_channel(server.address, TEST_TOKEN)
    try:
        yield service, pb_grpc.MonitorServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(0.2)
        await service.stop()


def check_sample(s: pb.SystemStats) -> None:
    mem = psutil.virtual_memory()
    assert s.cpu_count == psutil.cpu_count()
    assert 0.0 <= s.cpu_percent <= 100.0
    assert s.memory_total_bytes == mem.total
    assert 0 < s.memory_used_bytes <= s.memory_total_bytes and 0 < s.memory_percent <= 100
    assert 10 * 2**20 < s.process_rss_bytes < s.memory_total_bytes  # this Python process
    if HAS_NVIDIA:
        assert s.gpus and all(g.memory_total_bytes > 0 and 0 <= g.utilization_percent <= 100 for g in s.gpus)
    else:
        assert len(s.gpus) == 0


async def test_watch_with_own_interval_streams_sane_samples() -> None:
    async with monitor_server(5.0) as (_, stub):
        call = stub.WatchSystemStats(pb.WatchSystemStatsRequest(interval_ms=150))
        loop = asyncio.get_running_loop()
        started = loop.time()
        samples = [(await asyncio.wait_for(call.read(), 5)).stats for _ in range(4)]
        elapsed = loop.time() - started
        call.cancel()
        for s in samples:
            check_sample(s)
        times = [s.sample_time.ToNanoseconds() for s in samples]
        assert times == sorted(times) and len(set(times)) == 4
        assert 0.45 <= elapsed < 4.0  # 4 × 150 ms, with generous room for a loaded machine


async def test_shared_stream_follows_the_configured_interval_and_in_process_subscribers() -> None:
    async with monitor_server(0.2) as (service, stub):
        in_process = service.stats()
        call = stub.WatchSystemStats(pb.WatchSystemStatsRequest())
        first = (await asyncio.wait_for(call.read(), 5)).stats
        second = (await asyncio.wait_for(call.read(), 5)).stats
        check_sample(second)
        assert second.sample_time.ToNanoseconds() > first.sample_time.ToNanoseconds()
        payload = (await asyncio.wait_for(in_process.get(), 5)).as_action()
        assert set(payload) >= {"cpu_percent", "memory_used", "memory_total", "process_rss", "gpus"}
        in_process.close()
        call.cancel()
        single = (await stub.GetSystemStats(pb.GetSystemStatsRequest())).stats
        check_sample(single)


@pytest.mark.parametrize("interval_ms", [-5, 1, 99])
async def test_bad_intervals_are_rejected(interval_ms: int) -> None:
    async with monitor_server(5.0) as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.WatchSystemStats(pb.WatchSystemStatsRequest(interval_ms=interval_ms)).read()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_gpu_probe_matches_the_machine() -> None:
    probe = GpuProbe()
    try:
        assert probe.available == HAS_NVIDIA
        assert (len(probe.sample()) > 0) == HAS_NVIDIA
    finally:
        probe.close()


async def test_idle_monitor_does_not_sample() -> None:
    async with monitor_server(0.1) as (service, _):
        await asyncio.sleep(0.4)
        assert service.latest is None
        with service.stats() as sub:
            await asyncio.wait_for(sub.get(), 5)
        assert service.latest is not None
