"""The deterministic intent layer: explicit commands are captured, ordinary chat never is."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from server.reminders.timeparse import parse_reminder
from server.tools.intents import match
from server.tools.replies import reminder_confirmation

ONLINE = {"mobile.location.get", "location.get", "desktop.desktop.notify", "desktop.notify", "add_task",
          "add_reminder"}


def is_tool(name: str) -> bool:
    return name in ONLINE


COMMANDS = [
    # (text, kind, captured text / tool, arguments)
    ("提醒我12点吃饭", "reminder", "提醒我12点吃饭", {}),
    ("明天早上八点提醒我开会", "reminder", "明天早上八点提醒我开会", {}),
    ("10分钟后提醒我关火", "reminder", "10分钟后提醒我关火", {}),
    ("请在下午三点提醒一下我交报告", "reminder", "请在下午三点提醒一下我交报告", {}),
    ("每个工作日早上9点提醒我站起来", "reminder", "每个工作日早上9点提醒我站起来", {}),
    ("明天7点叫我起床", "reminder", "明天7点叫我起床", {}),
    ("帮我设个提醒，晚上8点给妈妈打电话", "reminder", "帮我设个提醒，晚上8点给妈妈打电话", {}),
    ("你能在五点提醒我取快递吗", "reminder", "你能在五点提醒我取快递吗", {}),
    ("remind me in 10 minutes to stretch", "reminder", "remind me in 10 minutes to stretch", {}),
    ("Remind me to call mom at 5pm", "reminder", "Remind me to call mom at 5pm", {}),
    ("Can you remind me to water the plants tomorrow at 8?", "reminder",
     "Can you remind me to water the plants tomorrow at 8?", {}),
    ("every weekday at 9 remind me to stand up", "reminder", "every weekday at 9 remind me to stand up", {}),
    ("Please set a reminder for 7:30 to take my pills", "reminder", "Please set a reminder for 7:30 to take my pills",
     {}),
    ("别忘了提醒我明天8点交电费", "reminder", "别忘了提醒我明天8点交电费", {}),
    ("Don't forget to remind me at 6pm to feed the cat", "reminder",
     "Don't forget to remind me at 6pm to feed the cat", {}),
    ("At 5 pm remind me to call the bank", "reminder", "At 5 pm remind me to call the bank", {}),
    ("添加任务：买牛奶", "task", "买牛奶", {}),
    ("加个待办 写周报", "task", "写周报", {}),
    ("帮我新建一个任务 预约牙医", "task", "预约牙医", {}),
    ("把交电费加到待办清单里", "task", "交电费", {}),
    ("add task buy milk", "task", "buy milk", {}),
    ("Add a task: review the PR.", "task", "review the PR", {}),
    ("add renew passport to my to-do list", "task", "renew passport", {}),
    ("/tool mobile.location.get", "tool", "mobile.location.get", {}),
    ('/tool desktop.notify {"text": "hi", "level": 2}', "tool", "desktop.notify", {"text": "hi", "level": 2}),
    ("调用 mobile.location.get", "tool", "mobile.location.get", {}),
    ('run desktop.notify with {"text": "hello"}', "tool", "desktop.notify", {"text": "hello"}),
    ('请执行 desktop.desktop.notify 参数：{"text": "开会了"}', "tool", "desktop.desktop.notify", {"text": "开会了"}),
    ("use location.get", "tool", "location.get", {}),
]

CHAT = [
    "你好", "今天天气怎么样", "我今天有很多任务要做", "你还记得提醒我什么吗", "不要提醒我了", "你提醒过我吃药吗",
    "为什么你没有提醒我", "叫我小明就好", "我妈妈总是提醒我多喝水", "明天早上八点我要开会", "任务太多了，好累",
    "what did you remind me about?", "Don't remind me again", "Why didn't you remind me?", "My boss reminds me daily",
    "what tasks do I have", "I have to add salt to the soup", "Let's add some spice to the task",
    "the task list app is broken", "run the dishwasher", "use the force, Luke", "call mom", "tool camera.snap",
    "Can you tell me a story?", "I set a reminder yesterday but it did not ring", "remind me what we talked about",
    "Do you remind people of things?", "提醒我的事情你都记得吗？", "添加任务是怎么用的？", "how do I add a task?",
    "location.get is a nice name", "Tell me about the weather in Tokyo at 5pm", "别提醒我明天8点开会了",
    "Don't remind me at 6pm", "明天8点别忘了吃药", "Don't forget the milk at 5",
]


@pytest.mark.parametrize(("text", "kind", "what", "arguments"), COMMANDS)
def test_explicit_commands_are_recognised(text: str, kind: str, what: str, arguments: dict[str, object]) -> None:
    intent = match(text, is_tool)
    assert intent is not None, text
    assert intent.kind == kind and not intent.error
    assert (intent.tool if kind == "tool" else intent.text) == what
    assert intent.arguments == arguments


@pytest.mark.parametrize("text", CHAT)
def test_ordinary_chat_is_never_captured(text: str) -> None:
    assert match(text, is_tool) is None


def test_a_tool_command_with_bad_json_is_answered_with_the_reason() -> None:
    intent = match("/tool desktop.notify {text: hi}", is_tool)
    assert intent is not None and intent.kind == "tool"
    assert intent.error == "the arguments are not JSON: Expecting property name enclosed in double quotes at column 2"
    assert match("/tool desktop.notify [1]", is_tool).error == "the arguments must be a JSON object"  # type: ignore
    unknown = match("/tool camera.snap", is_tool)  # explicit syntax: the port answers "no tool named …"
    assert unknown is not None and unknown.tool == "camera.snap"


NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(("text", "zone", "reply"), [
    ("提醒我12点吃饭", "UTC", "好的，我会在今天 12:00 提醒你吃饭。"),
    ("明天早上八点提醒我开会", "Asia/Shanghai", "好的，我会在明天 08:00 提醒你开会。"),
    ("3月5号下午两点提醒我交报告", "UTC", "好的，我会在3月5日（周四）14:00 提醒你交报告。"),
    ("每个工作日早上9点提醒我站起来", "UTC", "好的，我会每个工作日 09:00 提醒你站起来。"),
    ("remind me in 40 minutes to stretch", "UTC", "OK, I'll remind you to stretch at 10:10."),
    ("remind me to call mom tomorrow at 8pm", "UTC", "OK, I'll remind you to call mom tomorrow at 20:00."),
    ("every weekday at 9 remind me to stand up", "UTC", "OK, I'll remind you to stand up every weekday at 09:00."),
])
def test_reminder_confirmations(text: str, zone: str, reply: str) -> None:
    parsed = parse_reminder(text, NOW, zone)
    assert reminder_confirmation(parsed, NOW) == reply
