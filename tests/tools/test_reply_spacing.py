"""Confirmations read cleanly: one Chinese spacing rule, the user's words said back as theirs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from server.reminders.timeparse import parse_reminder
from server.tools.replies import failed, reminder_confirmation, task_confirmation, tool_done, zh_spaced


@pytest.mark.parametrize(("text", "spaced"), [
    ("好的，我会在 今天 08:25 提醒你开会。", "好的，我会在今天 08:25 提醒你开会。"),  # the stray space of issue 12
    ("好的，我会在今天08:25提醒你call Bob。", "好的，我会在今天 08:25 提醒你 call Bob。"),
    ("好的，我会在3月5日（周四） 14:00提醒你交报告。", "好的，我会在3月5日（周四）14:00 提醒你交报告。"),
    ("好的，我会每5分钟提醒你喝水。", "好的，我会每5分钟提醒你喝水。"),
    ("好的，我会每天  21:00提醒你吃药 。", "好的，我会每天 21:00 提醒你吃药。"),
    ("好的，我会在今天 08:25 提醒你开会。", "好的，我会在今天 08:25 提醒你开会。"),  # already clean: unchanged
])
def test_zh_spaced(text: str, spaced: str) -> None:
    assert zh_spaced(text) == spaced
    assert zh_spaced(spaced) == spaced


def test_every_chinese_reply_is_spaced_but_results_stay_verbatim() -> None:
    assert task_confirmation("买 牛奶", "zh") == "好的，已添加任务：买牛奶。"
    assert task_confirmation("call Bob", "zh") == "好的，已添加任务：call Bob。"
    assert tool_done("desktop.notify", "已 显示", "zh") == "desktop.notify 已完成：已 显示"
    assert failed("设置提醒", "时间 已过", "zh") == "抱歉，设置提醒没有成功：时间 已过"
    assert task_confirmation("call  Bob", "en") == "OK, I added the task: call  Bob."


def test_the_users_words_are_said_back_as_theirs() -> None:
    now = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    parsed = parse_reminder("every day at 9pm remind me to take my medicine", now, "UTC")
    assert reminder_confirmation(parsed, now) == "OK, I'll remind you to take your medicine every day at 21:00."
    parsed = parse_reminder("remind me in 10 minutes to call Myra about My car", now, "UTC")
    assert reminder_confirmation(parsed, now) == "OK, I'll remind you to call Myra about your car at 09:40."
