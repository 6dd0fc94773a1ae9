"""The deterministic intent layer: explicit commands, recognised without a tool-capable model.

Precision over recall. Only three shapes are captured, and ordinary chat that
merely mentions reminders, tasks or tools falls through to the model:

- a reminder request: a "remind me" cue ("提醒我", "叫我", "remind me", "set a
  reminder") that is not a question about reminders or a refusal; the port
  then needs the time parser to find a time, or it still falls through;
- adding a task: "添加任务：…", "加个待办…", "把…加到任务列表", "add task …",
  "add … to my to-do list";
- an explicit tool call: "/tool NAME {json}" (always a command), or
  "调用/执行/run/call/invoke/use NAME [with] {json}" where NAME is a tool online
  right now (the caller says which names exist, so "run the dishwasher" is
  chat, not a command).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from server.reminders.timeparse import TimeParseError, parse_reminder
from server.text.language import Language, language_of

Kind = Literal["reminder", "task", "tool"]
NO_TIME = ("no time found", "not a number", "empty phrase")  # TimeParseErrors that mean "not a reminder"

# -- reminders ----------------------------------------------------------------
_ZH_REMIND = re.compile(r"提醒(?:一下)?我|(?:叫|喊)(?:我起床|醒我)|(?:设|定|建|加)(?:置|立)?一?个提醒|记得提醒")
_EN_REMIND = re.compile(r"\bremind\s+me\b|\bset\s+(?:a|an|up\s+a)\s+reminder\b|\bcreate\s+a\s+reminder\b", re.I)
# Questions about reminders, refusals and reports are chat, not commands.
_ZH_NOT_COMMAND = re.compile(
    r"不要|别|不用|甭|取消|什么|啥|怎么|为什么|为何|是不是|有没有|了吗|过吗|多少|几个|哪些|谁|"
    r"(?:提醒|叫)过|你会提醒|能不能|会不会|可以.*吗.*[?？]$")
_EN_NOT_COMMAND = re.compile(
    r"\b(?:don'?t|do\s+not|never|stop|cancel|no\s+need|what|why|how|when\s+did|did\s+you|have\s+you|"
    r"do\s+you|who|which)\b", re.I)
_ZH_DONT_FORGET = re.compile(r"^(?:请|你)?(?:千万)?(?:别|不要)忘(?:了|记)?")
_EN_DONT_FORGET = re.compile(r"^\s*(?:please\s+)?don'?t\s+forget\s+(?:to\s+)?", re.I)
# Someone else reminding the user, or a habit: a report, not a request.
_ZH_REPORT = re.compile(r"^(?:我(?:的)?(?:妈|爸|老婆|老公|女朋友|男朋友|家人)|他|她|它|他们|她们|老板|老师|同事|朋友"
                        r"|别人|大家)|总是|老是|经常|常常|一直|每次都|都会|也会")
# English reminder commands start with the cue (optionally after a polite opener).
_EN_COMMAND_START = re.compile(
    r"^\s*(?:(?:hey|ok|okay|pero)[,!]?\s+)*(?:please\s+|can\s+you\s+|could\s+you\s+|would\s+you\s+|pls\s+)?"
    r"(?:please\s+)?(?:remind\s+me|set\s+(?:a|an|up\s+a)\s+reminder|create\s+a\s+reminder)\b|"
    r"^\s*(?:every|each|on|at|in|tomorrow|today|tonight|this|next)\b.*\bremind\s+me\b", re.I)

# -- tasks ---------------------------------------------------------------------
_ZH_TASK = [
    re.compile(r"^(?:请|帮我|给我|麻烦你?)?(?:添加|新增|新建|增加|加|记|创建)(?:一?个|一条|一项)?"
               r"(?:任务|待办(?:事项)?|to-?do)[\s:：，,]*(?P<title>.+)$", re.I),
    re.compile(r"^(?:请|帮我|麻烦你?)?把(?P<title>.+?)(?:添加|加|放|记)(?:到|进|入)(?:我的)?"
               r"(?:任务|待办(?:事项)?)(?:列表|清单)?(?:里|中|上)?$"),
]
_EN_TASK = [
    re.compile(r"^(?:please\s+)?(?:add|create|new)\s+(?:a\s+)?(?:new\s+)?(?:task|to-?do)(?:\s+item)?"
               r"\s*(?::|-|,)?\s*(?P<title>.+)$", re.I),
    re.compile(r"^(?:please\s+)?(?:add|put)\s+(?P<title>.+?)\s+(?:to|on)\s+(?:my|the)\s+"
               r"(?:task|to-?do)\s+list$", re.I),
]

# -- tools ---------------------------------------------------------------------
_TOOL_NAME = r"[A-Za-z_][A-Za-z0-9_-]*(?:[.:][A-Za-z_][A-Za-z0-9_-]*)*"
_SLASH_TOOL = re.compile(rf"^/tool\s+(?P<name>{_TOOL_NAME})(?:\s+(?P<args>\S.*?))?\s*$", re.S)
_PHRASE_TOOL = re.compile(
    rf"^(?:请|帮我|please\s+)?(?:调用|执行|运行|使用|run|call|invoke|use)\s*(?:the\s+)?(?:tool\s+|工具\s*)?"
    rf"(?P<name>{_TOOL_NAME})\s*(?:with\s+|参数\s*[:：]?\s*)?(?P<args>\{{.*\}})?\s*[。.!！]?$", re.S | re.I)


@dataclass(frozen=True)
class Intent:
    kind: Kind
    language: Language
    text: str = ""  # the whole phrase (reminder) or the title (task)
    tool: str = ""  # the tool named (tool)
    arguments: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # a recognised command whose arguments are unusable (e.g. bad JSON)


def match(text: str, is_tool: Callable[[str], bool]) -> Intent | None:
    """The explicit command in `text`, or None for ordinary chat."""
    text = text.strip()
    if not text or len(text) > 500:
        return None
    lang = language_of(text)
    return _tool(text, lang, is_tool) or _task(text, lang) or _reminder(text, lang)


def _reminder(text: str, lang: Language) -> Intent | None:
    if lang == "zh":
        plain = _ZH_DONT_FORGET.sub("", text)  # "别忘了提醒我…" asks for a reminder; "别提醒我" refuses one
        if not _ZH_REMIND.search(plain) or _ZH_NOT_COMMAND.search(plain) or _ZH_REPORT.search(plain):
            return None
    else:
        plain = _EN_DONT_FORGET.sub("", text)
        if not _EN_REMIND.search(plain) or _EN_NOT_COMMAND.search(plain) or not _EN_COMMAND_START.search(plain):
            return None
    try:  # a request needs a time; which one (and whether it has passed) is the reminder service's business
        parse_reminder(text, datetime.now(UTC), "UTC")
    except TimeParseError as exc:
        if str(exc).startswith(NO_TIME):
            return None
    return Intent("reminder", lang, text=text)


def _task(text: str, lang: Language) -> Intent | None:
    stripped = text.rstrip("。.!！")
    for pattern in _ZH_TASK if lang == "zh" else _EN_TASK:
        m = pattern.match(stripped)
        if m is None:
            continue
        title = m["title"].strip().strip("「」“”\"'：:，, ")
        if title and not title.endswith(("?", "？", "吗")):
            return Intent("task", lang, text=title)
    return None


def _tool(text: str, lang: Language, is_tool: Callable[[str], bool]) -> Intent | None:
    m = _SLASH_TOOL.match(text)  # explicit syntax: always a command (an unknown name is answered as such)
    if m is None:
        m = _PHRASE_TOOL.match(text)
        if m is None or not is_tool(m["name"]):
            return None
    raw = m["args"]
    if not raw:
        return Intent("tool", lang, tool=m["name"])
    try:
        args = json.loads(raw)
    except json.JSONDecodeError as exc:
        return Intent("tool", lang, tool=m["name"], error=f"the arguments are not JSON: {exc.msg} "
                                                           f"at column {exc.colno}")
    if not isinstance(args, dict):
        return Intent("tool", lang, tool=m["name"], error="the arguments must be a JSON object")
    return Intent("tool", lang, tool=m["name"], arguments=args)
