"""What the companion says after a deterministic command: confirmations in the user's language.

Chinese spacing, one rule applied by `zh_spaced` to every Chinese reply here:
Chinese characters (and full-width punctuation) are never separated by a
space; a clock time or a Latin word sits between single spaces where it
meets Chinese ("我会在今天 08:25 提醒你 call Bob。"); other digits stay
attached to their Chinese unit ("3月5日", "每5分钟"), and nothing is spaced
next to full-width punctuation ("（周四）14:00").
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from server.reminders.timeparse import ParsedReminder, describe_cron, zone
from server.text.language import HAN

_ZH_WEEKDAYS = "一二三四五六日"
_FULL = r"\u3000-\u303f\uff00-\uffef"  # full-width punctuation and forms
# Every space touching Chinese or full-width punctuation goes; _BEFORE/_AFTER then put back the wanted ones.
_GAP = re.compile(rf"(?<=[{HAN}{_FULL}])\s+|\s+(?=[{HAN}{_FULL}])")
_BEFORE = re.compile(rf"(?<=[{HAN}])(?=\d{{1,2}}:\d{{2}}|[A-Za-z])")
_AFTER = re.compile(rf"(\d{{1,2}}:\d{{2}}|[A-Za-z])(?=[{HAN}])")


def zh_spaced(text: str) -> str:
    """`text` under the Chinese spacing rule above (the module docstring)."""
    text = _GAP.sub("", text)
    text = _BEFORE.sub(" ", text)
    return _AFTER.sub(r"\1 ", text)


def reminder_confirmation(parsed: ParsedReminder, now: datetime | None = None) -> str:
    """\"好的，我会在明天 08:00 提醒你开会。" / "OK, I'll remind you to stretch at 14:10." """
    content = parsed.content
    if parsed.cron is not None:
        when = describe_cron(parsed.cron, parsed.language)
        if parsed.language == "zh":
            return zh_spaced(f"好的，我会{when}提醒你{content}。")
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
        return zh_spaced(f"好的，我会在{day}{clock}提醒你{content}。")
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
    content = _YOURS.sub(lambda m: _SPOKEN_BACK[m.group(0).lower()], content)
    return f"to {content} " if not content.lower().startswith(("to ", "about ", "that ")) else f"{content} "


# The user's words said back to them: "remind me to take my medicine" → "to take your medicine".
_SPOKEN_BACK = {"my": "your", "mine": "yours", "myself": "yourself"}
_YOURS = re.compile(r"\b(?:my|mine|myself)\b", re.IGNORECASE)


def task_confirmation(title: str, language: str) -> str:
    return zh_spaced(f"好的，已添加任务：{title}。") if language == "zh" else f"OK, I added the task: {title}."


def tool_done(tool: str, result: Any, language: str, limit: int = 300) -> str:
    shown = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    if language == "zh":
        return zh_spaced(f"{tool}已完成：") + shown if shown else zh_spaced(f"{tool}已完成。")  # results verbatim
    return f"{tool} done: {shown}" if shown else f"{tool} done."


def tool_failed(tool: str, reason: str, language: str) -> str:
    return zh_spaced(f"{tool}没有成功：") + reason if language == "zh" else f"{tool} failed: {reason}"


def failed(what: str, reason: str, language: str) -> str:
    return zh_spaced(f"抱歉，{what}没有成功：") + reason if language == "zh" else f"Sorry, I could not {what}: {reason}"
