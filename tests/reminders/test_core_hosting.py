"""Reminders, tasks and monitor as CoreServices: their flags parse and they share one gRPC server."""

from __future__ import annotations

import argparse
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc

from peromesh.monitor.v1 import monitor_service_pb2 as mon_pb
from peromesh.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from peromesh.reminder.v1 import reminder_service_pb2 as rem_pb
from peromesh.reminder.v1 import reminder_service_pb2_grpc as rem_grpc
from peromesh.task.v1 import task_service_pb2 as task_pb
from peromesh.task.v1 import task_service_pb2_grpc as task_grpc
from server.mesh.component import MeshContext
from server.mesh.core_services import core_services
from server.monitor.service import MonitorService
from server.reminders.service import ReminderService
from server.rpc.channels import open_channel
from server.rpc.serving import start_server
from tests.meshkit import TEST_TOKEN

MINE = ("reminders", "tasks", "monitor")


async def test_core_services_share_one_port(tmp_path: Path) -> None:
    services = [s for s in core_services() if s.name in MINE]
    assert [s.name for s in services] == list(MINE)
    parser = argparse.ArgumentParser()
    group = parser.add_argument_group("core")
    for service in services:
        service.add_arguments(group)
    settings = parser.parse_args(["--reminder-timezone", "Asia/Shanghai", "--reminder-misfire-grace", "30",
                                  "--monitor-interval", "0.5"])
    settings.db_url = None
    ctx = MeshContext(settings=settings, data_dir=tmp_path, token=None)
    bindings = []
    try:
        for service in services:
            bindings += await service.start(ctx)
        server = await start_server("core-test", bindings, "127.0.0.1", 0, TEST_TOKEN)
        try:
            async with open_channel(server.address, TEST_TOKEN) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                for b in bindings:
                    reply = await health.Check(health_pb2.HealthCheckRequest(service=b.full_name))
                    assert reply.status == health_pb2.HealthCheckResponse.SERVING
                made = await rem_grpc.ReminderServiceStub(channel).CreateReminderFromText(
                    rem_pb.CreateReminderFromTextRequest(text="明天早上八点提醒我开会"))
                assert made.reminder.timezone == "Asia/Shanghai" and made.reminder.content == "开会"
                added = await task_grpc.TaskServiceStub(channel).AddTask(task_pb.AddTaskRequest(title="t"))
                assert added.task.id
                stats = await mon_grpc.MonitorServiceStub(channel).GetSystemStats(mon_pb.GetSystemStatsRequest())
                assert stats.stats.memory_total_bytes > 0
        finally:
            await server.stop(0.2)
    finally:
        for service in services:
            await service.stop()
    assert (tmp_path / "reminders.db").exists() and (tmp_path / "tasks.db").exists()
    reminders, monitor = services[0], services[2]
    assert isinstance(reminders, ReminderService) and isinstance(monitor, MonitorService)
    assert reminders.misfire_grace.total_seconds() == 30 and monitor.interval_s == 0.5
