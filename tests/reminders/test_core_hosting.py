"""Reminders, tasks and monitor hosted on the core: their flags reach them and they share its one port."""

from __future__ import annotations

from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc

from peromesh.monitor.v1 import monitor_service_pb2 as mon_pb
from peromesh.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from peromesh.reminder.v1 import reminder_service_pb2 as rem_pb
from peromesh.reminder.v1 import reminder_service_pb2_grpc as rem_grpc
from peromesh.task.v1 import task_service_pb2 as task_pb
from peromesh.task.v1 import task_service_pb2_grpc as task_grpc
from server.rpc.channels import open_channel
from tests.meshkit import TEST_TOKEN, start_test_mesh

SERVICES = ("peromesh.reminder.v1.ReminderService", "peromesh.task.v1.TaskService",
            "peromesh.monitor.v1.MonitorService", "peromesh.hub.v1.HubService", "peromesh.dialog.v1.DialogService")


async def test_core_services_share_one_port(tmp_path: Path) -> None:
    mesh = await start_test_mesh(tmp_path, "--reminder-timezone", "Asia/Shanghai", "--reminder-misfire-grace", "30",
                                 "--monitor-interval", "0.5", "--asr-model", "none", only=["core"])
    try:
        async with open_channel(mesh.addresses["core"], TEST_TOKEN) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in SERVICES:
                reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
            made = await rem_grpc.ReminderServiceStub(channel).CreateReminderFromText(
                rem_pb.CreateReminderFromTextRequest(text="明天早上八点提醒我开会"))
            assert made.reminder.timezone == "Asia/Shanghai" and made.reminder.content == "开会"
            added = await task_grpc.TaskServiceStub(channel).AddTask(task_pb.AddTaskRequest(title="t"))
            assert added.task.id
            stats = await mon_grpc.MonitorServiceStub(channel).GetSystemStats(mon_pb.GetSystemStatsRequest())
            assert stats.stats.memory_total_bytes > 0
        assert mesh.core is not None
        assert mesh.core.reminders.misfire_grace.total_seconds() == 30 and mesh.core.monitor.interval_s == 0.5
    finally:
        await mesh.stop()
    assert (tmp_path / "reminders.db").exists() and (tmp_path / "tasks.db").exists()
