"""Natural-language reminder phrases → (when, what), in Chinese and English.

"提醒我12点吃饭", "明天早上八点提醒我开会", "remind me in 10 minutes to stretch",
"every weekday at 9 remind me to stand up" each become a `ParsedReminder`: an
absolute due time, a relative delay (with its due time), or a cron schedule,
plus the content with the time words and the "remind me" cue removed.

Deterministic against a given `now` and time zone. A small rule layer reads
what dateparser does not (Chinese clock/period/day words and numerals,
relative delays, recurrences, the "12点 when it is already 13:00" rule);
dateparser reads English calendar dates ("on March 3", "Dec 24th").

Hour rule: a bare hour 1–11 with no am/pm or period word means the next
occurrence of its 12-hour reading today (at 13:00, "3点" is 15:00), else the
next morning; "12点" is noon (tomorrow's when today's has passed). With an
explicit later day and no period, the hour is taken as written ("明天8点" 08:00).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.text.language import has_han, is_han, language_of

Kind = Literal["absolute", "relative", "cron"]


class TimeParseError(ValueError):
    """The phrase holds no usable time (or one in the past)."""


@dataclass(frozen=True)
class CronSpec:
    """A recurring schedule in crontab semantics (day_of_week as names: mon..sun)."""

    minute: str = "0"
    hour: str = "*"
    day_of_month: str = "*"
    month: str = "*"
    day_of_week: str = "*"


@dataclass(frozen=True)
class ParsedReminder:
    kind: Kind
    content: str
    timezone: str
    language: Literal["zh", "en"]
    time_phrase: str
    due_time: datetime | None = None  # absolute and relative (aware, in `timezone`)
    delay: timedelta | None = None  # relative only
    cron: CronSpec | None = None  # cron only


# ---------------------------------------------------------------- numbers

_ZH_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
             "八": 8, "九": 9}
ZH_NUM = r"(?:[0-9０-９]+|[零〇一二两三四五六七八九十百]+)"

_EN_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "ninety": 90, "a": 1, "an": 1, "a couple of": 2, "a few": 3,
}
_EN_WORD_RE = "|".join(sorted((re.escape(w) for w in _EN_WORDS), key=len, reverse=True))
EN_NUM = rf"(?:\d+(?:\.\d+)?|(?:{_EN_WORD_RE})(?:[\s-](?:one|two|three|four|five|six|seven|eight|nine))?)"


def zh_number(text: str) -> int:
    """'12' / '１２' / '十二' / '二十三' / '两' / '零五' → int."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    total, current = 0, 0
    for ch in text:
        if ch in _ZH_DIGIT:
            current = current * 10 + _ZH_DIGIT[ch] if current else _ZH_DIGIT[ch]
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        elif ch == "百":
            total += (current or 1) * 100
            current = 0
        else:
            raise TimeParseError(f"not a number: {text!r}")
    return total + current


def en_number(text: str) -> float:
    text = text.strip().lower().replace("-", " ")
    try:
        return float(text)
    except ValueError:
        pass
    if text in _EN_WORDS:
        return _EN_WORDS[text]
    head, _, tail = text.partition(" ")
    if head in _EN_WORDS and tail in _EN_WORDS:
        return _EN_WORDS[head] + _EN_WORDS[tail]
    raise TimeParseError(f"not a number: {text!r}")


# ---------------------------------------------------------------- shared parts

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ZH_WEEKDAY = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": -1,
               "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6}
_EN_WEEKDAY = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
EN_DAY = (r"(?:mon(?:day)?|tue(?:s(?:day)?)?|wed(?:nesday)?|thu(?:r(?:s(?:day)?)?)?|fri(?:day)?"
          r"|sat(?:urday)?|sun(?:day)?)")

# Default clock time for a period word with no hour ("明天早上" → 08:00).
_PERIOD_DEFAULT = {"dawn": 6, "morning": 8, "forenoon": 9, "noon": 12, "afternoon": 15, "dusk": 18,
                   "evening": 20, "night": 21, "midnight": 24}


@dataclass
class _Parts:
    """What the rules found; resolved into a time by `_resolve`."""

    spans: list[tuple[int, int]] = field(default_factory=list)
    delay: timedelta | None = None
    day_offset: int | None = None
    weekday: int | None = None
    next_week: bool = False
    ymd: tuple[int | None, int | None, int] | None = None  # year?, month?, day
    month_offset: int = 0  # "下个月5号"
    period: str | None = None
    hour: int | None = None
    minute: int = 0
    ampm: str | None = None
    cron_dow: str | None = None
    cron_dom: str | None = None
    cron_month: str | None = None
    cron_every_minutes: int | None = None
    cron_every_hours: int | None = None

    def take(self, m: re.Match[str], group: int | str = 0) -> None:
        self.spans.append(m.span(group))

    def free(self, text: str) -> str:
        """`text` with every consumed span blanked (positions kept)."""
        chars = list(text)
        for a, b in self.spans:
            for i in range(a, b):
                chars[i] = "\0"
        return "".join(chars)

    @property
    def has_day(self) -> bool:
        return self.day_offset is not None or self.weekday is not None or self.ymd is not None


def _adjust_hour(hour: int, period: str | None, ampm: str | None) -> int:
    """Hour of day (may be ≥ 24: next day) from a written hour and its period/am-pm."""
    if ampm == "am":
        return 0 if hour == 12 else hour
    if ampm == "pm":
        return hour if hour >= 12 else hour + 12
    if period in ("afternoon", "dusk"):
        return hour + 12 if hour < 12 else hour
    if period == "noon":
        return hour + 12 if hour < 6 else hour
    if period in ("evening", "night"):
        if hour == 12:
            return 24
        if hour <= 4:
            return hour + 24 if period == "night" else hour + 12
        return hour + 12 if hour < 12 else hour
    if period == "midnight":
        return 24 if hour == 12 else (hour + 24 if hour <= 4 else hour + 12)
    if period == "dawn":
        return 0 if hour == 12 else hour
    return hour


def _resolve(parts: _Parts, now: datetime) -> tuple[Kind, datetime | None, CronSpec | None]:
    """Turn the found parts into an absolute time, or a cron schedule."""
    tz = now.tzinfo
    recurring = any(x is not None for x in (parts.cron_dow, parts.cron_dom, parts.cron_every_minutes,
                                            parts.cron_every_hours))
    if parts.delay is not None and not recurring:
        if parts.hour is None and parts.period is None:
            return "relative", now + parts.delay, None
        # "三天后早上八点": the delay names a day.
        parts.day_offset = parts.delay.days or max(1, round(parts.delay.total_seconds() / 86400))
    if recurring:
        return "cron", None, _cron(parts)
    if parts.hour is not None:
        written = parts.hour
        explicit = parts.ampm is not None or parts.period is not None
        hours = [_adjust_hour(written, parts.period, parts.ampm)]
        if not explicit and 1 <= written <= 11:
            hours.append(written + 12)
    elif parts.period is not None:
        hours = [_PERIOD_DEFAULT[parts.period]]
    elif parts.has_day:
        hours = [9]
    else:
        raise TimeParseError("no time found")
    minute = parts.minute
    today = now.date()

    def at(day: date, hour: int) -> datetime:
        base = datetime(day.year, day.month, day.day, tzinfo=tz)
        return base + timedelta(hours=hour, minutes=minute)

    def first_future(day: date, candidates: list[int]) -> datetime | None:
        for hour in candidates:
            t = at(day, hour)
            if t > now:
                return t
        return None

    if parts.ymd is not None:
        year, month, dom = parts.ymd
        if parts.month_offset:
            ahead = today.month - 1 + parts.month_offset
            year, month = today.year + ahead // 12, ahead % 12 + 1
        month = month or today.month
        year_given = year is not None
        year = year or today.year
        day = _safe_date(year, month, dom)
        t = first_future(day, hours[:1])
        if t is None and not year_given:
            if parts.ymd[1] is None:  # "5号": next month
                nm = date(year + (month == 12), month % 12 + 1, 1)
                day = _safe_date(nm.year, nm.month, dom)
            else:
                day = _safe_date(year + 1, month, dom)
            t = at(day, hours[0])
        if t is None or t <= now:
            raise TimeParseError("that time has already passed")
        return "absolute", t, None
    if parts.weekday is not None:
        ahead = (parts.weekday - today.weekday()) % 7
        if parts.next_week:
            ahead = 7 - today.weekday() + parts.weekday
        day = today + timedelta(days=ahead)
        t = at(day, hours[0])
        if t <= now:
            t = at(day + timedelta(days=7), hours[0])
        return "absolute", t, None
    if parts.day_offset is not None and parts.day_offset > 0:
        return "absolute", at(today + timedelta(days=parts.day_offset), hours[0]), None
    t = first_future(today, hours)
    if t is None:
        if parts.day_offset == 0 and parts.period not in ("evening", "night", "midnight"):
            raise TimeParseError("that time today has already passed")
        t = at(today + timedelta(days=1), hours[0])
    return "absolute", t, None


def _safe_date(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise TimeParseError(f"no such date: {year}-{month}-{day}") from exc


def _cron(parts: _Parts) -> CronSpec:
    if parts.cron_every_minutes is not None:
        return CronSpec(minute=f"*/{parts.cron_every_minutes}", day_of_week=parts.cron_dow or "*")
    if parts.cron_every_hours is not None:
        step = parts.cron_every_hours
        return CronSpec(minute=str(parts.minute), hour="*" if step == 1 else f"*/{step}",
                        day_of_week=parts.cron_dow or "*")
    if parts.hour is not None:
        hour = _adjust_hour(parts.hour, parts.period, parts.ampm) % 24
    elif parts.period is not None:
        hour = _PERIOD_DEFAULT[parts.period] % 24
    else:
        hour = 9
    return CronSpec(minute=str(parts.minute), hour=str(hour), day_of_month=parts.cron_dom or "*",
                    month=parts.cron_month or "*", day_of_week=parts.cron_dow or "*")


def _every_step(n: int, unit_minutes: bool) -> int:
    limit = 60 if unit_minutes else 24
    if n <= 0 or limit % n:
        raise TimeParseError(f"an interval of {n} {'minutes' if unit_minutes else 'hours'} "
                             f"does not divide {'an hour' if unit_minutes else 'a day'} evenly")
    return n


# ---------------------------------------------------------------- Chinese rules

_ZH_UNIT = r"(?:秒钟?|分钟|分|小时|個?鐘頭|钟头|天|日|周|星期|礼拜|个月|月)"
_ZH_UNIT_SECONDS = {"秒": 1, "秒钟": 1, "分钟": 60, "分": 60, "小时": 3600, "钟头": 3600, "天": 86400,
                    "日": 86400, "周": 604800, "星期": 604800, "礼拜": 604800}
_ZH_AMOUNT = rf"(?:{ZH_NUM}\s*个?\s*半?|半\s*个?)\s*{_ZH_UNIT}"
_ZH_RELATIVE = re.compile(rf"(?:过\s*)?(?P<body>(?:{_ZH_AMOUNT}\s*(?:零|又)?\s*)+)(?:之|以)?后"
                          rf"|过\s*(?P<body2>(?:{_ZH_AMOUNT}\s*)+)")
_ZH_AMOUNT_PART = re.compile(rf"(?P<n>{ZH_NUM})?\s*个?\s*(?P<half>半)?\s*个?\s*(?P<unit>{_ZH_UNIT})")

_ZH_PERIODS = [("凌晨", "dawn"), ("清晨", "morning"), ("早上", "morning"), ("早晨", "morning"),
               ("上午", "forenoon"), ("中午", "noon"), ("正午", "noon"), ("下午", "afternoon"),
               ("傍晚", "dusk"), ("晚上", "evening"), ("夜里", "night"), ("夜晚", "evening"),
               ("半夜", "midnight"), ("深夜", "midnight"), ("午夜", "midnight")]
_ZH_PERIOD = re.compile("|".join(p for p, _ in _ZH_PERIODS) + rf"|[早晚](?=\s*{ZH_NUM}\s*[点點:：])")
_ZH_PERIOD_NAME = dict(_ZH_PERIODS) | {"早": "morning", "晚": "evening"}

_ZH_CLOCK = re.compile(
    rf"(?P<h>{ZH_NUM})\s*(?:点钟?|點鐘?|时|時)"
    rf"(?:\s*(?P<half>半)|\s*(?P<q>[一三13])刻|\s*(?P<m>{ZH_NUM})\s*分?(?!钟)|\s*整)?"
    rf"|(?P<h2>[0-9０-９]{{1,2}})\s*[:：]\s*(?P<m2>[0-9０-９]{{2}})")
_ZH_DAYWORD = re.compile(r"大后天|后天|明天|明日|明儿|今天|今日|今儿|今晚|今早|明早|明晚")
_ZH_DAYWORDS = {"今天": (0, None), "今日": (0, None), "今儿": (0, None), "明天": (1, None),
                "明日": (1, None), "明儿": (1, None), "后天": (2, None), "大后天": (3, None),
                "今晚": (0, "evening"), "今早": (0, "morning"), "明早": (1, "morning"),
                "明晚": (1, "evening")}
_ZH_WEEKEND_DAY = re.compile(r"(?P<which>下个?|这个?|本)?周末")
_ZH_TIME_CONTEXT = set("天午上晚早凌晨夜中在到于我是日号点")
_ZH_WEEKDAY_RE = re.compile(r"(?P<which>下下个?|下个?|这个?|本|今)?(?:周|星期|礼拜)(?P<d>[一二三四五六日天1-7])")
_ZH_DATE = re.compile(rf"(?:(?P<y>\d{{4}})\s*年\s*)?(?:(?P<mo>{ZH_NUM})\s*月\s*)?(?P<d>{ZH_NUM})\s*[日号號]")

_ZH_EVERY_DAYS = re.compile(r"每个?(?:周|星期|礼拜)"
                            r"(?P<days>(?:[、,，和及与]?\s*(?:周|星期|礼拜)?[一二三四五六日天1-7])+)"
                            r"(?:\s*到\s*(?:周|星期|礼拜)?(?P<to>[一二三四五六日天1-7]))?")
_ZH_RANGE_DAYS = re.compile(r"每?(?:周|星期|礼拜)(?P<a>[一二三四五六日天1-7])\s*(?:到|至|-)\s*"
                            r"(?:周|星期|礼拜)?(?P<b>[一二三四五六日天1-7])")
_ZH_WORKDAY = re.compile(r"(?:每个?|在)?(?:工作日|周一到周五)(?:的)?")
_ZH_WEEKEND = re.compile(r"每个?周末")
_ZH_DAILY = re.compile(r"(?:每天|每日|天天)(?P<p>早上|晚上|中午|下午|上午|凌晨)?"
                       r"|每个?(?P<p2>晚上|早上|中午|下午|上午)|每(?P<p3>[早晚])")
_ZH_MONTHLY = re.compile(rf"每个?月\s*(?P<d>{ZH_NUM})\s*[日号號]")
_ZH_YEARLY = re.compile(rf"每年\s*(?P<mo>{ZH_NUM})\s*月\s*(?P<d>{ZH_NUM})\s*[日号號]")
_ZH_EVERY_N = re.compile(rf"每隔?\s*(?P<n>{ZH_NUM})?\s*个?\s*(?P<unit>分钟|小时|钟头)")
_ZH_CUES = re.compile(r"(?:请|麻烦)?(?:你)?(?:到时候?|届时)?"
                      r"(?:提醒一下我|提醒我一下|提醒我|提醒一下|提醒|叫我|喊我|告诉我|通知我)"
                      r"|记得|别忘了|不要忘了|的时候|的时侯")


def _zh_weekday(ch: str) -> int:
    return _ZH_WEEKDAY[ch]


def _parse_zh(text: str, parts: _Parts) -> None:
    free = text
    # Recurrences first: they own their day words.
    m = _ZH_YEARLY.search(free)
    if m:
        parts.take(m)
        parts.cron_month, parts.cron_dom = str(zh_number(m["mo"])), str(zh_number(m["d"]))
    m = _ZH_MONTHLY.search(free)
    if m and parts.cron_dom is None:
        parts.take(m)
        parts.cron_dom = str(zh_number(m["d"]))
    free = parts.free(text)
    for pattern in (_ZH_RANGE_DAYS, _ZH_WORKDAY, _ZH_WEEKEND, _ZH_EVERY_DAYS):
        m = pattern.search(free)
        if not m:
            continue
        parts.take(m)
        if pattern is _ZH_WORKDAY:
            parts.cron_dow = "mon-fri"
        elif pattern is _ZH_WEEKEND:
            parts.cron_dow = "sat,sun"
        elif pattern is _ZH_RANGE_DAYS:
            a, b = _zh_weekday(m["a"]), _zh_weekday(m["b"])
            parts.cron_dow = f"{WEEKDAY_NAMES[a]}-{WEEKDAY_NAMES[b]}"
        else:
            days = [_zh_weekday(c) for c in re.findall(r"[一二三四五六日天1-7]", m["days"])]
            if m["to"]:
                parts.cron_dow = f"{WEEKDAY_NAMES[days[0]]}-{WEEKDAY_NAMES[_zh_weekday(m['to'])]}"
            else:
                parts.cron_dow = ",".join(WEEKDAY_NAMES[d] for d in days)
        break
    free = parts.free(text)
    m = _ZH_EVERY_N.search(free)
    if m:
        parts.take(m)
        n = zh_number(m["n"]) if m["n"] else 1
        if m["unit"] == "分钟":
            parts.cron_every_minutes = _every_step(n, True)
        else:
            parts.cron_every_hours = _every_step(n, False)
    free = parts.free(text)
    m = _ZH_DAILY.search(free)
    if m:
        parts.take(m)
        parts.cron_dow = parts.cron_dow or "*"
        word = m["p"] or m["p2"] or m["p3"]
        if word:
            parts.period = _ZH_PERIOD_NAME[word]
    # Relative delays.
    free = parts.free(text)
    m = _ZH_RELATIVE.search(free)
    if m:
        body = m["body"] or m["body2"]
        seconds = 0.0
        for part in _ZH_AMOUNT_PART.finditer(body):
            n = zh_number(part["n"]) if part["n"] else 0
            unit = part["unit"].replace("个", "").replace("個", "").replace("鐘頭", "钟头")
            if unit in ("月",):
                raise TimeParseError("months are not a supported delay")
            size = _ZH_UNIT_SECONDS[unit]
            seconds += n * size + (size / 2 if part["half"] else 0)
        if seconds <= 0:
            raise TimeParseError("the delay must be positive")
        parts.take(m)
        parts.delay = timedelta(seconds=seconds)
    # Days.
    free = parts.free(text)
    m = _ZH_DAYWORD.search(free)
    if m:
        parts.take(m)
        parts.day_offset, period = _ZH_DAYWORDS[m.group()]
        parts.period = period or parts.period
    free = parts.free(text)
    m = _ZH_WEEKDAY_RE.search(free)
    if m:
        d = _zh_weekday(m["d"])
        if d >= 0:
            parts.take(m)
            parts.weekday = d
            parts.next_week = (m["which"] or "").startswith("下")
            if (m["which"] or "").startswith("下下"):
                raise TimeParseError("'下下周' is not supported; give a date")
    free = parts.free(text)
    m = _ZH_WEEKEND_DAY.search(free)
    if m and parts.weekday is None and parts.cron_dow is None:
        parts.take(m)
        parts.weekday = 5  # the weekend starts on Saturday
        parts.next_week = (m["which"] or "").startswith("下")
    free = parts.free(text)
    # Periods and clock.
    m = _ZH_PERIOD.search(free)
    if m:
        parts.take(m)
        parts.period = _ZH_PERIOD_NAME[m.group()]
    free = parts.free(text)
    m = next((c for c in _ZH_CLOCK.finditer(free) if not _zh_a_bit(free, c)), None)
    if m:
        parts.take(m)
        if m["h2"]:
            parts.hour, parts.minute = int(m["h2"]), int(m["m2"])
        else:
            parts.hour = zh_number(m["h"])
            if m["half"]:
                parts.minute = 30
            elif m["q"]:
                parts.minute = 15 if m["q"] in "一1" else 45
            elif m["m"]:
                parts.minute = zh_number(m["m"])
        _check_clock(parts)
    free = parts.free(text)
    m = _ZH_DATE.search(free)
    if m and not parts.has_day and parts.cron_dom is None:
        parts.take(m)
        parts.ymd = (int(m["y"]) if m["y"] else None, zh_number(m["mo"]) if m["mo"] else None, zh_number(m["d"]))
        before = free[:m.start()].rstrip()
        if not m["mo"] and (nm := re.search(r"下个?月$", before)):
            parts.spans.append((nm.start(), nm.end()))
            parts.month_offset = 1


def _zh_a_bit(free: str, m: re.Match[str]) -> bool:
    """'喝一点水' / '快一点': 一点 as "a bit", not 1 o'clock."""
    if m["h"] != "一" or m["half"] or m["q"] or m["m"]:
        return False
    before = free[m.start() - 1] if m.start() else ""
    return bool(before) and is_han(before) and before not in _ZH_TIME_CONTEXT


def _check_clock(parts: _Parts) -> None:
    if parts.hour is None or not 0 <= parts.hour <= 24 or not 0 <= parts.minute <= 59:
        raise TimeParseError(f"not a clock time: {parts.hour}:{parts.minute:02d}")


def _zh_content(text: str, parts: _Parts) -> str:
    rest = parts.free(text).replace("\0", " ")
    rest = _ZH_CUES.sub(" ", rest)
    rest = re.sub(r"\s+", " ", rest).strip()
    rest = re.sub(r"^(?:(?:[在于到从请]|麻烦你?|帮我)\s*)+", "", rest)
    rest = rest.replace(" ", "") if has_han(rest) else rest
    return rest.strip(" ，,。.！!？?、：:；;~～") or "提醒"


# ---------------------------------------------------------------- English rules

_EN_UNIT = r"(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?)"
_EN_AMOUNT = rf"(?:half\s+an?\s+hour|{EN_NUM}\s*{_EN_UNIT}(?:\s+and\s+a\s+half)?)"
_EN_RELATIVE = re.compile(rf"\b(?:in|after)\s+(?P<body>{_EN_AMOUNT}(?:\s*(?:,|and)?\s*{_EN_AMOUNT})*)\b"
                          rf"|\b(?P<body2>{_EN_AMOUNT}(?:\s*(?:,|and)?\s*{_EN_AMOUNT})*)\s+(?:from\s+now|later)\b")
_EN_AMOUNT_PART = re.compile(rf"(?P<halfhour>half\s+an?\s+hour)|(?P<n>{EN_NUM})\s*(?P<unit>{_EN_UNIT})"
                             rf"(?P<half>\s+and\s+a\s+half)?")
_EN_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

_EN_EVERY_N = re.compile(rf"\bevery\s+(?P<n>{EN_NUM})?\s*(?P<unit>minutes?|mins?|hours?|hrs?)\b|\bhourly\b")
_EN_DAILY = re.compile(r"\b(?:every\s*day|everyday|daily|each\s+day)\b"
                       r"|\b(?:every|each)\s+(?P<period>morning|afternoon|evening|night)\b")
_EN_WEEKDAYS = re.compile(r"\b(?:(?:every|each|on)\s+)?weekdays?\b(?:\s+mornings?)?"
                          r"|\bmonday\s+(?:to|through|-)\s+friday\b")
_EN_WEEKENDS = re.compile(r"\b(?:(?:every|each|on)\s+)?weekends?\b")
_EN_EVERY_DAYS = re.compile(rf"\b(?:every|each)\s+(?P<days>{EN_DAY}(?:\s*(?:,|and|&)\s*{EN_DAY})*)\b"
                            rf"|\bon\s+(?P<plural>{EN_DAY}s(?:\s*(?:,|and|&)\s*{EN_DAY}s)*)\b")
_EN_MONTHLY = re.compile(r"\b(?:every\s+month|monthly|each\s+month)\s+on\s+the\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?\b"
                         r"|\bon\s+the\s+(?P<d2>\d{1,2})(?:st|nd|rd|th)?\s+of\s+every\s+month\b")

_EN_ORDINAL_DAY = re.compile(r"\bon\s+the\s+(?P<d>\d{1,2})(?:st|nd|rd|th)\b(?!\s+of\b)")
_EN_DAYWORD = re.compile(r"\b(?:the\s+)?day\s+after\s+tomorrow\b|\btomorrow\b|\btoday\b|\btonight\b")
_EN_WEEKDAY_RE = re.compile(rf"\b(?:(?P<which>next|this|on|coming)\s+)?(?P<d>{EN_DAY})\b")
_EN_PERIOD = re.compile(r"\b(?:in\s+the\s+|this\s+|at\s+)?"
                        r"(?P<p>morning|afternoon|evening|night|noon|midday|midnight)\b")
_EN_PERIODS = {"morning": "morning", "afternoon": "afternoon", "evening": "evening", "night": "night",
               "noon": "noon", "midday": "noon", "midnight": "midnight"}
_EN_HOUR_WORD = r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_EN_CLOCK = re.compile(
    r"\b(?:at\s+|@\s*)?(?P<h>\d{1,2})(?:[:.](?P<m>\d{2}))?\s*(?P<ap>a\.?m\.?|p\.?m\.?)(?!\w)"
    r"|\b(?:at\s+|@\s*)?(?P<h2>\d{1,2}):(?P<m2>\d{2})\b"
    rf"|\b(?:at\s+|@\s*)?(?P<hw>half|quarter)\s+(?P<rel>past|to)\s+(?P<h4>\d{{1,2}}|{_EN_HOUR_WORD})\b"
    rf"|\b(?:at\s+|@\s*)?(?P<h3>\d{{1,2}}|{_EN_HOUR_WORD})(?:\s+o'?clock)\b"
    rf"|\b(?:at|@)\s*(?P<h5>\d{{1,2}}|{_EN_HOUR_WORD})\b")
_EN_CUES = re.compile(r"\b(?:please\s+)?(?:set\s+(?:a|an)\s+reminder\s+(?:for\s+me\s+)?(?:to|for|that)?"
                      r"|remind\s+me\s+(?:to|that|about|of)?|don'?t\s+let\s+me\s+forget\s+(?:to)?"
                      r"|don'?t\s+forget\s+(?:to)?|reminder\s*:|remind\s+me)\b", re.IGNORECASE)
_MONTH_NAMES = re.compile(r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\b|\d", re.I)


def _parse_en(text: str, parts: _Parts) -> None:
    low = text.lower()
    m = _EN_MONTHLY.search(low)
    if m:
        parts.take(m)
        parts.cron_dom = str(int(m["d"] or m["d2"]))
    for pattern in (_EN_WEEKDAYS, _EN_WEEKENDS, _EN_EVERY_DAYS):
        m = pattern.search(parts.free(low))
        if not m:
            continue
        parts.take(m)
        if pattern is _EN_WEEKDAYS:
            parts.cron_dow = "mon-fri"
            if "morning" in m.group():
                parts.period = "morning"
        elif pattern is _EN_WEEKENDS:
            parts.cron_dow = "sat,sun"
        else:
            names = re.findall(EN_DAY, m["days"] or m["plural"])
            parts.cron_dow = ",".join(WEEKDAY_NAMES[_EN_WEEKDAY[n[:3]]] for n in names)
        break
    m = _EN_EVERY_N.search(parts.free(low))
    if m:
        parts.take(m)
        n = int(en_number(m["n"])) if m["n"] else 1
        if m.group() != "hourly" and m["unit"].startswith("m"):
            parts.cron_every_minutes = _every_step(n, True)
        else:
            parts.cron_every_hours = _every_step(n, False)
    m = _EN_DAILY.search(parts.free(low))
    if m:
        parts.take(m)
        parts.cron_dow = parts.cron_dow or "*"
        if m["period"]:
            parts.period = _EN_PERIODS[m["period"]]
    m = _EN_RELATIVE.search(parts.free(low))
    if m:
        seconds = 0.0
        for part in _EN_AMOUNT_PART.finditer(m["body"] or m["body2"]):
            if part["halfhour"]:
                seconds += 1800
                continue
            size = _EN_UNIT_SECONDS[part["unit"][0]]
            seconds += en_number(part["n"]) * size + (size / 2 if part["half"] else 0)
        if seconds <= 0:
            raise TimeParseError("the delay must be positive")
        parts.take(m)
        parts.delay = timedelta(seconds=seconds)
    m = _EN_DAYWORD.search(parts.free(low))
    if m:
        parts.take(m)
        word = m.group()
        parts.day_offset = 2 if "after" in word else 1 if word == "tomorrow" else 0
        if word == "tonight":
            parts.period = "evening"
    m = _EN_WEEKDAY_RE.search(parts.free(low))
    if m:
        parts.take(m)
        parts.weekday = _EN_WEEKDAY[m["d"][:3]]
        parts.next_week = m["which"] == "next"
    m = _EN_CLOCK.search(parts.free(low))
    if m:
        parts.take(m)
        if m["h"]:
            parts.hour, parts.minute = int(m["h"]), int(m["m"] or 0)
            parts.ampm = "am" if m["ap"].startswith("a") else "pm"
        elif m["h2"]:
            parts.hour, parts.minute = int(m["h2"]), int(m["m2"])
        elif m["hw"]:
            hour = int(en_number(m["h4"]))
            offset = 30 if m["hw"] == "half" else 15
            parts.hour, parts.minute = (hour, offset) if m["rel"] == "past" else (hour - 1 or 12, 60 - offset)
        else:
            parts.hour = int(en_number(m["h3"] or m["h5"]))
        _check_clock(parts)
    m = _EN_PERIOD.search(parts.free(low))
    if m:
        parts.take(m)
        period = _EN_PERIODS[m["p"]]
        if period in ("noon", "midnight") and parts.hour is None:
            parts.hour = 12
            parts.ampm = "pm" if period == "noon" else None
        parts.period = period
    m = _EN_ORDINAL_DAY.search(parts.free(low))
    if m and not parts.has_day and parts.cron_dom is None:
        parts.take(m)
        parts.ymd = (None, None, int(m["d"]))
    if not parts.has_day and parts.cron_dom is None and parts.delay is None:
        _en_calendar_date(text, parts)


def _en_calendar_date(text: str, parts: _Parts) -> None:
    """Dates such as "on March 3" or "12/25", read by dateparser from what is left."""
    from dateparser.search import search_dates

    free = parts.free(text).replace("\0", " ")
    found = search_dates(free, languages=["en"], settings={"PREFER_DATES_FROM": "future",
                                                           "REQUIRE_PARTS": ["day", "month"]})
    for phrase, value in found or []:
        if not _MONTH_NAMES.search(phrase) or re.fullmatch(r"\s*(?:on\s+)?\d{1,2}\s*", phrase):
            continue
        start = free.find(phrase)
        parts.spans.append((start, start + len(phrase)))
        year = value.year if re.search(r"\b\d{4}\b", phrase) else None
        parts.ymd = (year, value.month, value.day)
        return


def _en_content(text: str, parts: _Parts) -> str:
    rest = parts.free(text).replace("\0", " ")
    rest = _EN_CUES.sub(" ", rest)
    rest = re.sub(r"\s+", " ", rest).strip(" ,.;:!?-")
    rest = re.sub(r"^(?:(?:at|on|in|to|and|then|please|that)\b\s*)+", "", rest, flags=re.I)
    rest = re.sub(r"(?:\s*\b(?:at|on|in|by|for)\b)+$", "", rest, flags=re.I)
    return rest.strip(" ,.;:!?-") or "Reminder"


# ---------------------------------------------------------------- entry point

def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TimeParseError(f"unknown time zone {name!r}") from exc


def parse_reminder(text: str, now: datetime, timezone: str) -> ParsedReminder:
    """Read a reminder phrase relative to `now` (any aware datetime) in `timezone`."""
    text = text.strip()
    if not text:
        raise TimeParseError("empty phrase")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    tz = zone(timezone)
    local_now = now.astimezone(tz)
    language = language_of(text)
    parts = _Parts()
    if language == "zh":
        _parse_zh(text, parts)
    else:
        _parse_en(text, parts)
    if not parts.spans:
        raise TimeParseError("no time found in the phrase")
    kind, due, cron = _resolve(parts, local_now)
    content = _zh_content(text, parts) if language == "zh" else _en_content(text, parts)
    phrase = " ".join(text[a:b].strip() for a, b in sorted(parts.spans) if text[a:b].strip())
    return ParsedReminder(kind=kind, content=content, timezone=timezone, language=language, time_phrase=phrase,
                          due_time=due, delay=parts.delay if kind == "relative" else None, cron=cron)


def describe(parsed: ParsedReminder) -> str:
    """A one-line confirmation in the phrase's language."""
    if parsed.cron is not None:
        when = describe_cron(parsed.cron, parsed.language)
    else:
        assert parsed.due_time is not None
        when = parsed.due_time.strftime("%Y-%m-%d %H:%M")
    if parsed.language == "zh":
        return f"好的，{when} 提醒你：{parsed.content}"
    return f"OK, I'll remind you {when}: {parsed.content}" if parsed.cron else \
        f"OK, I'll remind you at {when}: {parsed.content}"


def describe_cron(cron: CronSpec, language: str) -> str:
    clock = f"{int(cron.hour):02d}:{int(cron.minute):02d}" if cron.hour.isdigit() and cron.minute.isdigit() else ""
    if cron.minute.startswith("*/"):
        every = f"每{cron.minute[2:]}分钟" if language == "zh" else f"every {cron.minute[2:]} minutes"
    elif not cron.hour.isdigit():
        every = "每小时" if language == "zh" else "every hour"
    elif cron.day_of_month != "*":
        every = f"每月{cron.day_of_month}日 {clock}" if language == "zh" else \
            f"monthly on day {cron.day_of_month} at {clock}"
    elif cron.day_of_week == "mon-fri":
        every = f"每个工作日 {clock}" if language == "zh" else f"every weekday at {clock}"
    elif cron.day_of_week == "*":
        every = f"每天 {clock}" if language == "zh" else f"every day at {clock}"
    else:
        every = f"每周({cron.day_of_week}) {clock}" if language == "zh" else f"every {cron.day_of_week} at {clock}"
    return every
