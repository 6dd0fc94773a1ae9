"""The zh/en reminder phrase table against a fixed "now" (Tue 2026-03-10 13:00, Asia/Shanghai)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from server.reminders.timeparse import CronSpec, TimeParseError, describe, parse_reminder, zh_number

TZ = "Asia/Shanghai"
NOW = datetime(2026, 3, 10, 13, 0, tzinfo=ZoneInfo(TZ))


def at(month: int, day: int, hour: int, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(TZ))


ABSOLUTE = [
    # Chinese
    ("提醒我12点吃饭", at(3, 11, 12), "吃饭"),  # 12:00 already passed at 13:00 → tomorrow
    ("明天早上八点提醒我开会", at(3, 11, 8), "开会"),
    ("晚上8点提醒我看电视", at(3, 10, 20), "看电视"),
    ("下午三点半提醒我去接孩子", at(3, 10, 15, 30), "去接孩子"),
    ("后天上午十点提醒我交报告", at(3, 12, 10), "交报告"),
    ("大后天提醒我还书", at(3, 13, 9), "还书"),
    ("提醒我3点开会", at(3, 10, 15), "开会"),  # bare 3 at 13:00 → 15:00
    ("8点提醒我吃药", at(3, 10, 20), "吃药"),
    ("提醒我11点睡觉", at(3, 10, 23), "睡觉"),
    ("今晚十点提醒我洗衣服", at(3, 10, 22), "洗衣服"),
    ("明晚7点半提醒我看比赛", at(3, 11, 19, 30), "看比赛"),
    ("星期五下午三点提醒我打扫卫生", at(3, 13, 15), "打扫卫生"),
    ("下周一早上9点提醒我开周会", at(3, 16, 9), "开周会"),
    ("下周二提醒我交房租", at(3, 17, 9), "交房租"),
    ("周二上午10点提醒我取快递", at(3, 17, 10), "取快递"),  # today is Tuesday, 10:00 passed
    ("3月15日提醒我去体检", at(3, 15, 9), "去体检"),
    ("5号提醒我交电费", at(4, 5, 9), "交电费"),  # the 5th has passed this month
    ("2026年12月25日晚上8点提醒我买礼物", at(12, 25, 20), "买礼物"),
    ("凌晨两点提醒我收菜", at(3, 11, 2), "收菜"),
    ("中午十二点提醒我午休", at(3, 11, 12), "午休"),
    ("八点一刻提醒我出门", at(3, 10, 20, 15), "出门"),
    ("十点零五分提醒我", at(3, 10, 22, 5), "提醒"),
    ("三天后早上八点提醒我复查", at(3, 13, 8), "复查"),
    ("12:30提醒我吃饭", at(3, 11, 12, 30), "吃饭"),
    ("明天提醒我交作业", at(3, 11, 9), "交作业"),
    ("今天晚上12点提醒我睡觉", at(3, 11, 0), "睡觉"),
    ("周日晚上提醒我准备周报", at(3, 15, 20), "准备周报"),
    ("请在下午5点45分提醒我下班", at(3, 10, 17, 45), "下班"),
    ("明天下午两点的时候记得提醒我给妈妈打电话", at(3, 11, 14), "给妈妈打电话"),
    ("周末提醒我打扫", at(3, 14, 9), "打扫"),
    ("下个月20号提醒我交房租", at(4, 20, 9), "交房租"),  # "20号" alone would be 03-20
    ("3月8号提醒我买花", at(3, 8, 9, year=2027), "买花"),  # passed this year → next year
    ("下午一点提醒我喝一点水", at(3, 11, 13), "喝一点水"),  # 一点 in 喝一点水 means "a bit"
    # English
    ("remind me to call mom at 5pm", at(3, 10, 17), "call mom"),
    ("remind me on the 15th to pay rent", at(3, 15, 9), "pay rent"),
    ("remind me tomorrow at 9am to submit the report", at(3, 11, 9), "submit the report"),
    ("at noon remind me to eat lunch", at(3, 11, 12), "eat lunch"),
    ("tonight at 8 remind me to watch the game", at(3, 10, 20), "watch the game"),
    ("remind me on Friday at 3pm to clean the kitchen", at(3, 13, 15), "clean the kitchen"),
    ("next monday at 10am remind me to pay rent", at(3, 16, 10), "pay rent"),
    ("remind me on March 15 at 10am to see the dentist", at(3, 15, 10), "see the dentist"),
    ("remind me at 3 to call Bob", at(3, 10, 15), "call Bob"),
    ("Remind me at 8:30 to take my pills", at(3, 10, 20, 30), "take my pills"),
    ("remind me tomorrow morning to buy milk", at(3, 11, 8), "buy milk"),
    ("remind me at midnight to go to bed", at(3, 11, 0), "go to bed"),
    ("remind me the day after tomorrow at 9 to renew the passport", at(3, 12, 9), "renew the passport"),
    ("remind me at half past four to pick up the kids", at(3, 10, 16, 30), "pick up the kids"),
    ("remind me on Dec 24th to buy a tree", at(12, 24, 9), "buy a tree"),
    ("Tomorrow at 7:15 pm: dinner with Anna", at(3, 11, 19, 15), "dinner with Anna"),
]

RELATIVE = [
    ("10分钟后提醒我喝水", timedelta(minutes=10), "喝水"),
    ("半小时后提醒我关火", timedelta(minutes=30), "关火"),
    ("一个半小时后叫我起床", timedelta(minutes=90), "起床"),
    ("1小时30分钟后提醒我取快递", timedelta(minutes=90), "取快递"),
    ("3天后提醒我复查", timedelta(days=3), "复查"),
    ("过二十分钟提醒我看锅", timedelta(minutes=20), "看锅"),
    ("remind me in 10 minutes to stretch", timedelta(minutes=10), "stretch"),
    ("remind me in half an hour to check the oven", timedelta(minutes=30), "check the oven"),
    ("remind me in an hour and a half to leave", timedelta(minutes=90), "leave"),
    ("in 2 hours remind me to check email", timedelta(hours=2), "check email"),
    ("30 minutes from now remind me to call back", timedelta(minutes=30), "call back"),
    ("remind me to take the laundry out in forty-five minutes", timedelta(minutes=45), "take the laundry out"),
]

CRON = [
    ("每天早上7点提醒我跑步", CronSpec("0", "7"), "跑步"),
    ("每个工作日早上9点提醒我打卡", CronSpec("0", "9", day_of_week="mon-fri"), "打卡"),
    ("每周一三五晚上8点提醒我健身", CronSpec("0", "20", day_of_week="mon,wed,fri"), "健身"),
    ("每月1号提醒我还信用卡", CronSpec("0", "9", day_of_month="1"), "还信用卡"),
    ("每隔30分钟提醒我活动一下", CronSpec("*/30"), "活动一下"),
    ("每小时提醒我喝水", CronSpec("0", "*"), "喝水"),
    ("每年3月8日提醒我送花", CronSpec("0", "9", day_of_month="8", month="3"), "送花"),
    ("每周末上午十点提醒我打扫", CronSpec("0", "10", day_of_week="sat,sun"), "打扫"),
    ("每晚十一点提醒我睡觉", CronSpec("0", "23"), "睡觉"),
    ("every weekday at 9 remind me to stand up", CronSpec("0", "9", day_of_week="mon-fri"), "stand up"),
    ("every day at 7:30 remind me to meditate", CronSpec("30", "7"), "meditate"),
    ("every monday and wednesday at 6pm remind me to go to the gym",
     CronSpec("0", "18", day_of_week="mon,wed"), "go to the gym"),
    ("remind me every 15 minutes to drink water", CronSpec("*/15"), "drink water"),
    ("every month on the 1st at 10am remind me to pay bills", CronSpec("0", "10", day_of_month="1"), "pay bills"),
    ("every morning at 7 remind me to exercise", CronSpec("0", "7"), "exercise"),
    ("remind me on weekends at 10 to water the plants", CronSpec("0", "10", day_of_week="sat,sun"),
     "water the plants"),
]


@pytest.mark.parametrize(("text", "due", "content"), ABSOLUTE)
def test_absolute_phrases(text: str, due: datetime, content: str) -> None:
    parsed = parse_reminder(text, NOW, TZ)
    assert (parsed.kind, parsed.due_time, parsed.content) == ("absolute", due, content)


@pytest.mark.parametrize(("text", "delay", "content"), RELATIVE)
def test_relative_phrases(text: str, delay: timedelta, content: str) -> None:
    parsed = parse_reminder(text, NOW, TZ)
    assert (parsed.kind, parsed.delay, parsed.due_time, parsed.content) == ("relative", delay, NOW + delay, content)


@pytest.mark.parametrize(("text", "cron", "content"), CRON)
def test_recurring_phrases(text: str, cron: CronSpec, content: str) -> None:
    parsed = parse_reminder(text, NOW, TZ)
    assert (parsed.kind, parsed.cron, parsed.content) == ("cron", cron, content)


def test_table_is_large_enough() -> None:
    assert len(ABSOLUTE) + len(RELATIVE) + len(CRON) >= 30


@pytest.mark.parametrize("text", [
    "remind me to buy milk",  # no time at all
    "提醒我喝一点水",  # 一点 = "a bit", so no time at all
    "今天上午8点提醒我开会",  # explicitly today, explicitly morning, already past
    "每隔7分钟提醒我",  # does not divide an hour
    "",
])
def test_unusable_phrases_raise(text: str) -> None:
    with pytest.raises(TimeParseError):
        parse_reminder(text, NOW, TZ)


def test_unknown_timezone_raises() -> None:
    with pytest.raises(TimeParseError, match="time zone"):
        parse_reminder("提醒我12点吃饭", NOW, "Mars/Olympus")


def test_now_is_read_in_the_requested_timezone() -> None:
    # 05:00 UTC is 13:00 in Shanghai but 01:00 in New York (EDT since 2026-03-08).
    now_utc = datetime(2026, 3, 10, 5, 0, tzinfo=ZoneInfo("UTC"))
    assert parse_reminder("提醒我12点吃饭", now_utc, TZ).due_time == at(3, 11, 12)
    ny = parse_reminder("remind me at 9am to jog", now_utc, "America/New_York")
    assert ny.due_time == datetime(2026, 3, 10, 9, 0, tzinfo=ZoneInfo("America/New_York"))


def test_zh_numbers() -> None:
    words = ("十二", "二十三", "两", "零五", "十", "１２", "一百零八")
    assert [zh_number(s) for s in words] == [12, 23, 2, 5, 10, 12, 108]


def test_confirmation_mentions_time_and_content() -> None:
    assert describe(parse_reminder("明天早上八点提醒我开会", NOW, TZ)) == "好的，2026-03-11 08:00 提醒你：开会"
    text = describe(parse_reminder("every weekday at 9 remind me to stand up", NOW, TZ))
    assert "every weekday at 09:00" in text and "stand up" in text
