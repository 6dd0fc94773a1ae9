"""What the companion says after a deterministic command: confirmations in the user's language."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from server.reminders.timeparse import ParsedReminder, describe_cron, zone

_ZH_WEEKDAYS = "一二三四五六日"


def reminder_confirmation(parsed: ParsedReminder, now: datetime | None = None) -> str:
    """ "好的，我会在 明天 08:00 提醒你开会。" / "OK, I'll remind you to stretch at 14:10." """
    content = parsed.content
    if parsed.cron is not None:
        when = describe_cron(parsed.cron, parsed.language)
        if parsed.language == "zh":
            return f"好的，我会{when} 提醒你{content}。"
        return f"OK, I'll remind you {_en_what(content)}{when}.".replace("  ", " ")
    assert parsed.due_time is not None
    due = parsed.due_time.astimezone(zone(parsed.timezone))
    today = (now or datetime.now(due.tzinfo)).astimezone(due.tzinfo).date()
    days = (due.date() - today).days
    clock = due.strftime("%H:%M")
    if parsed.language == "zh":
        day = {0: "今天", 1: "明天", 2: "后天"}.get(days)
        if day is None:
            day = f"{due.month}月{due.day}日（周{_ZH_WEEKDAYS[due.weekday()]}）"
            if due.year != today.year:
                day = f"{due.year}年{day}"
        return f"好的，我会在 {day} {clock} 提醒你{content}。"
    if days == 0:
        when = f"at {clock}"
    elif days == 1:
        when = f"tomorrow at {clock}"
    else:
        when = due.strftime("on %a %d %b" + (" %Y" if due.year != today.year else "")) + f" at {clock}"
    return f"OK, I'll remind you {_en_what(content)}{when}."


def _en_what(content: str) -> str:
    if not content or content == "Reminder":
        return ""
    return f"to {content} " if not content.lower().startswith(("to ", "about ", "that ")) else f"{content} "


def task_confirmation(title: str, language: str) -> str:
    return f"好的，已添加任务：{title}。" if language == "zh" else f"OK, I added the task: {title}."


def tool_done(tool: str, result: Any, language: str, limit: int = 300) -> str:
    shown = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    if language == "zh":
        return f"{tool} 已完成：{shown}" if shown else f"{tool} 已完成。"
    return f"{tool} done: {shown}" if shown else f"{tool} done."


def tool_failed(tool: str, reason: str, language: str) -> str:
    return f"{tool} 没有成功：{reason}" if language == "zh" else f"{tool} failed: {reason}"


def failed(what: str, reason: str, language: str) -> str:
    return f"抱歉，{what}没有成功：{reason}" if language == "zh" else f"Sorry, I could not {what}: {reason}"
