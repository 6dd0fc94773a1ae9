"""Tools in the running core: Converse turns that call tools, broadcasts to hub nodes, spoken reminders.

A real core (scripted LLM, text only) on 127.0.0.1:0; devices are native
Attach nodes on the core's HubService and Converse streams on its
DialogService, as in production.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from meshkit import Conversation, kinds, start_test_mesh

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.hub.v1 import hub_service_pb2_grpc as hub_grpc
from server.app.root import Mesh
from server.llm.scripted import DEFAULT_TEXT
from server.reminders.service import ReminderService
from server.rpc.channels import open_channel
from server.tasks.service import TaskService
from tests.grid.grid_node import NEVER, GridNode, cap

NIT_REPLY = '好的，我来办。<nit>\n$t = add_task(title="买牛奶")\n$loc = mobile.location.get(precision="fine")\n</nit>'


class Devices:
    """Converse sessions and hub nodes against one core."""

    def __init__(self, mesh: Mesh, channel: grpc.aio.Channel) -> None:
        self.mesh = mesh
        self.channel = channel
        self.stub = hub_grpc.HubServiceStub(channel)
        self.nodes: list[GridNode] = []
        self.talks: list[Conversation] = []

    async def node(self, node_id: str, platform: str = "test") -> GridNode:
        node = GridNode(self.stub, node_id, platform)
        self.nodes.append(node)
        await node.attach()
        return node

    async def talk(self, device_id: str) -> Conversation:
        talk = Conversation(self.channel)
        self.talks.append(talk)
        talk.config(session_id=f"s-{device_id}", device_id=device_id, text_only=True)
        assert (await talk.next()).HasField("session_started")
        return talk

    @property
    def reminders(self) -> ReminderService:
        service: ReminderService = self.mesh.core.reminders
        return service

    @property
    def tasks(self) -> TaskService:
        service: TaskService = self.mesh.core.tasks
        return service


@pytest.fixture
async def devices_factory(data_dir: Path) -> AsyncIterator[Callable[..., object]]:
    made: list[tuple[Mesh, Devices]] = []

    async def make(*flags: str) -> Devices:
        mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "1", "--reminder-timezone", "UTC", *flags,
                                     only=["core"])
        devices = Devices(mesh, open_channel(mesh.addresses["core"], mesh.token))
        made.append((mesh, devices))
        return devices

    yield make
    for mesh, devices in made:
        for talk in devices.talks:
            await talk.close()
        for node in devices.nodes:
            await node.close()
        await devices.channel.close()
        await mesh.stop()


@pytest.fixture
async def devices(devices_factory: Callable[..., object]) -> Devices:
    return await devices_factory()  # type: ignore[no-any-return,operator]


def text_of(events: list[pb.ConverseResponse]) -> str:
    return next(e.assistant_final.text for e in events if e.HasField("assistant_final"))


async def test_reminder_phrase_becomes_a_tool_call_a_confirmation_and_a_reminder(devices: Devices) -> None:
    talk = await devices.talk("desk")
    talk.say("提醒我12点吃饭")
    events = await talk.until_state(pb.STATE_IDLE)
    names = kinds(events)
    assert names.index("tool_call") < names.index("tool_result") < names.index("assistant_delta")
    call = next(e.tool_call for e in events if e.HasField("tool_call"))
    result = next(e.tool_result for e in events if e.HasField("tool_result"))
    assert call.name == "add_reminder" and json.loads(call.arguments_json) == {"time": "12点", "content": "吃饭"}
    assert result.call_id == call.call_id and not result.error
    made = json.loads(result.result_json)
    assert made["content"] == "吃饭" and made["next_due_time"].endswith("T12:00:00+00:00")
    assert re.fullmatch(r"好的，我会在(今天|明天) 12:00 提醒你吃饭。", text_of(events))
    [reminder] = await devices.reminders.list_reminders()
    assert reminder.id == made["id"] and reminder.content == "吃饭"


async def test_ordinary_chat_goes_to_the_model_without_tool_calls(devices: Devices) -> None:
    talk = await devices.talk("desk")
    talk.say("明天早上八点我要开会，好紧张")
    events = await talk.until_state(pb.STATE_IDLE)
    assert "tool_call" not in kinds(events) and text_of(events) == DEFAULT_TEXT
    assert await devices.reminders.list_reminders() == []


async def test_add_task_command_and_task_update_broadcast(devices: Devices) -> None:
    watcher = await devices.node("watcher")
    talk = await devices.talk("desk")
    talk.say("add task renew the passport")
    events = await talk.until_state(pb.STATE_IDLE)
    assert text_of(events) == "OK, I added the task: renew the passport."
    assert next(e.tool_call for e in events if e.HasField("tool_call")).name == "add_task"
    update = await watcher.action("task:update")
    assert update["operation"] == "added" and json.loads(update["task"])["title"] == "renew the passport"


async def test_task_actions_from_a_node_reach_the_other_nodes(devices: Devices) -> None:
    phone, desk, web = [await devices.node(n) for n in ("phone", "desk", "web")]
    added = await phone.request("task:add", "t1", title="买菜", notes="西红柿")
    assert added.status == 0
    task = json.loads(added.data)
    assert (task["title"], task["notes"], task["completed"]) == ("买菜", "西红柿", False)
    for other in (phone, desk, web):  # every client refreshes, the requester too
        update = await other.action("task:update")
        assert update["operation"] == "added" and json.loads(update["task"])["id"] == task["id"]
    assert (await desk.request("task:complete", "t2", id=task["id"])).status == 0
    for other in (phone, desk, web):
        assert (await other.action("task:update"))["operation"] == "completed"
    listed = await web.request("task:list", "t3", include_completed="true")
    assert [t["id"] for t in json.loads(listed.data)] == [task["id"]]
    missing = await web.request("task:complete", "t4", id="nope")
    assert (missing.status, missing.code, missing.error_msg) == (1, "NOT_FOUND", "no task has id 'nope'")
    bad = await web.request("task:add", "t5")
    assert (bad.status, bad.code, bad.error_msg) == (1, "INVALID_ARGUMENT", "task:add needs the param 'title'")
    made = await web.request("reminder:add", "r1", text="remind me in 2 hours to stretch")
    assert made.status == 0 and json.loads(made.data)["content"] == "stretch"
    update = await phone.action("schedule_update")
    assert update["operation"] == "create" and json.loads(update["data"])["content"] == "stretch"


async def test_a_firing_reminder_reaches_nodes_and_is_spoken_in_live_sessions(devices: Devices) -> None:
    phone = await devices.node("phone", "mobile")
    talk = await devices.talk("desk")
    reminder = await devices.reminders.create(content="喝水", delay=timedelta(seconds=1))
    trigger = await phone.action("reminder_trigger", wait_s=20)
    assert (trigger["id"], trigger["content"], trigger["status"]) == (reminder.id, "喝水", "fired")
    assert trigger["due_time"] and trigger["fired_time"] and json.loads(trigger["target_devices"]) == []
    events = await talk.until_state(pb.STATE_IDLE, timeout=20)
    assert text_of(events) == "提醒你：喝水" and "tool_call" not in kinds(events)


async def test_tool_command_is_routed_to_the_requesting_device(devices: Devices) -> None:
    phones = {}
    for node_id in ("phone-a", "phone-b"):
        phone = phones[node_id] = await devices.node(node_id, "mobile")
        phone.handlers["location.get"] = lambda p, me=node_id: {"device": me}
        await phone.register(cap("location.get", "Where the phone is"))
    talk = await devices.talk("phone-b")
    talk.say("/tool mobile.location.get")
    events = await talk.until_state(pb.STATE_IDLE)
    result = next(e.tool_result for e in events if e.HasField("tool_result"))
    assert json.loads(result.result_json) == {"device": "phone-b"} and not phones["phone-a"].requests
    assert text_of(events) == 'mobile.location.get done: {"device": "phone-b"}'
    talk.say("/tool camera.snap")
    events = await talk.until_state(pb.STATE_IDLE)
    error = next(e.tool_result for e in events if e.HasField("tool_result")).error
    assert error.startswith("no tool named 'camera.snap' is available now (tools: add_reminder, add_task, "
                            "mobile.location.get)")


async def test_nit_script_in_a_model_reply_runs_through_the_grid(devices_factory: Callable[..., object]) -> None:
    devices: Devices = await devices_factory("--scripted-text", NIT_REPLY)  # type: ignore[operator]
    phone = await devices.node("phone", "mobile")
    phone.handlers["location.get"] = lambda p: {"lat": 1.5, "precision": p["precision"]}
    await phone.register(cap("location.get", schema={"type": "object",
                                                     "properties": {"precision": {"type": "string"}}}))
    talk = await devices.talk("phone")
    talk.say("帮我记一下买牛奶，顺便看看我在哪")
    events = await talk.until_state(pb.STATE_IDLE)
    shown = "".join(e.assistant_delta.text_delta for e in events if e.HasField("assistant_delta"))
    assert shown == text_of(events) == "好的，我来办。\n（已执行：add_task、mobile.location.get）"  # no script shown
    calls = [e.tool_call for e in events if e.HasField("tool_call")]
    results = [e.tool_result for e in events if e.HasField("tool_result")]
    assert [c.name for c in calls] == ["add_task", "mobile.location.get"]
    assert json.loads(results[1].result_json) == {"lat": 1.5, "precision": "fine"}
    assert [t.title for t in await devices.tasks.list_tasks()] == ["买牛奶"]


async def test_tool_prompt_lists_the_tools_online_at_each_turn(devices_factory: Callable[..., object]) -> None:
    devices: Devices = await devices_factory("--tool-prompt", "on")  # type: ignore[operator]
    llm = devices.mesh.core.deps.llm
    talk = await devices.talk("desk")

    async def system_prompt_of_a_turn() -> str:
        talk.say("hello there")
        await talk.until_state(pb.STATE_IDLE)
        return str(llm.calls[-1].messages[0].content)

    first = await system_prompt_of_a_turn()
    assert "- add_reminder(time, content)" in first and "- add_task(title, notes?)" in first
    assert "mobile.location.get" not in first
    phone = await devices.node("phone", "mobile")
    await phone.register(cap("location.get", "Where the phone is", {"type": "object", "properties": {
        "precision": {"type": "string"}}}))
    assert "- mobile.location.get(precision?)  # Where the phone is" in await system_prompt_of_a_turn()
    await phone.close()
    for _ in range(100):  # the hub notices the closed stream asynchronously
        if devices.mesh.core.hub.node("phone") is None:
            break
        await asyncio.sleep(0.02)
    assert await system_prompt_of_a_turn() == first


@pytest.mark.parametrize("allowed", [False, True])
async def test_dangerous_capability_from_the_dialog_needs_the_core_flag(
        devices_factory: Callable[..., object], allowed: bool) -> None:
    flags = ("--allow-dangerous", "shell.run,power.off") if allowed else ()
    devices: Devices = await devices_factory(*flags)  # type: ignore[operator]
    desk = await devices.node("desk", "desktop")
    desk.handlers["shell.run"] = lambda p: {"stdout": "hi"}
    await desk.register(cap("shell.run", "Run a command", {"type": "object", "required": ["cmd"]}, dangerous=True))
    talk = await devices.talk("desk")
    talk.say('/tool shell.run {"cmd": "echo hi"}')
    events = await talk.until_state(pb.STATE_IDLE)
    result = next(e.tool_result for e in events if e.HasField("tool_result"))
    if allowed:
        assert json.loads(result.result_json) == {"stdout": "hi"} and len(desk.requests) == 1
    else:
        assert result.error == ("PERMISSION_DENIED: desktop.shell.run is marked dangerous and is refused; start the "
                                "core with --allow-dangerous shell.run to allow it")
        assert text_of(events).startswith("shell.run failed: PERMISSION_DENIED") and not desk.requests


async def test_an_async_nit_call_reports_after_the_turn_as_an_announcement(
        devices_factory: Callable[..., object]) -> None:
    reply = '我去查一下。<nit>\n$page = async web.search(q="天气")\n</nit>'
    devices: Devices = await devices_factory("--scripted-text", reply)  # type: ignore[operator]
    desk = await devices.node("desk", "desktop")
    desk.handlers["web.search"] = lambda p: NEVER  # answered by hand below, after the turn is over
    await desk.register(cap("web.search", "Search the web"))
    talk = await devices.talk("desk")
    talk.say("帮我查查天气")
    events = await talk.until_state(pb.STATE_IDLE)
    assert text_of(events) == "我去查一下。\n（正在处理：web.search，完成后告诉你）"
    await eventually_true(lambda: len(desk.requests) == 1)
    request = desk.requests[0]
    assert request.request.params["q"] == "天气"
    await desk.answer(request, '{"summary": "晴，25度"}')
    spoken = await talk.until_state(pb.STATE_IDLE, timeout=20)
    assert text_of(spoken) == 'web.search 完成了：{"summary": "晴，25度"}'
    assert not devices.mesh.core.nit.late  # the runtime was released


async def eventually_true(check: Callable[[], bool], wait_s: float = 5.0) -> None:
    async with asyncio.timeout(wait_s):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


async def test_system_stats_reach_nodes_only_while_any_is_attached(devices_factory: Callable[..., object]) -> None:
    devices: Devices = await devices_factory("--monitor-interval", "0.3")  # type: ignore[operator]
    monitor = devices.mesh.core.monitor
    assert monitor._fanout.subscribers == 0  # no device: the monitor idles
    node = await devices.node("dash", "web")
    stats = await node.action("system_stats", wait_s=10)
    assert float(stats["cpu_percent"]) >= 0 and int(stats["memory_total"]) > 0
    assert isinstance(json.loads(stats["gpus"]), list)
    assert monitor._fanout.subscribers == 1
    await node.close()
    await eventually_true(lambda: monitor._fanout.subscribers == 0)
