"""How important a new memory is, by a simple, documented heuristic (no model).

Start at 0.30, then:
  +0.25  a personal fact or preference ("I am/my/I like…", "我是/我的/我喜欢…")
  +0.20  an explicit request to remember ("remember", "don't forget", "记住", "别忘了")
  +0.10  it mentions a number, date or time (birthdays, appointments, amounts)
  +0.10  an emotion word (sad, worried, 难过, 担心…)
  +0.10  it is substantial (≥ 40 characters)
  -0.15  it is very short (< 8 characters)
Small talk ("hi", "ok", "thanks", "你好", "嗯", "哈哈"…) is 0.05 whatever else.
The result is clamped to [0.02, 1]. The secretary later decays it over time
and recall reinforces it, so the first guess need not be perfect.
"""

from __future__ import annotations

import re

_PERSONAL = re.compile(
    r"\b(i am|i'm|i was|my|mine|i like|i love|i hate|i prefer|i have|i've|i work|i live|favou?rite|"
    r"allergic|birthday|always|never)\b|我是|我的|我喜欢|我爱|我讨厌|我不喜欢|我有|我在|我住|最喜欢|"
    r"过敏|生日|总是|从来不|从不",
    re.IGNORECASE,
)
_REMEMBER = re.compile(r"\b(remember|don't forget|do not forget|remind me|note that)\b|记住|记得|别忘|不要忘|提醒我",
                       re.IGNORECASE)
_NUMBER = re.compile(r"\d|[一二三四五六七八九十百千万两]+[月日号点岁年个]|星期|周[一二三四五六日天]")
_EMOTION = re.compile(
    r"\b(sad|happy|angry|worried|afraid|scared|anxious|upset|lonely|excited|stressed|tired|love)\b|"
    r"难过|伤心|开心|高兴|生气|害怕|担心|焦虑|孤独|兴奋|压力|累|难受|想你",
    re.IGNORECASE,
)
_SMALL_TALK = re.compile(
    r"^\W*(hi|hello|hey|ok|okay|thanks|thank you|bye|good night|yes|no|sure|lol|haha|"
    r"你好|您好|嗯+|哦+|好的?|谢谢|拜拜|晚安|是的|对|哈+|呵+)\W*$",
    re.IGNORECASE,
)


def score(text: str) -> float:
    """The importance of `text` in [0.02, 1] (see the module docstring)."""
    stripped = text.strip()
    if _SMALL_TALK.match(stripped):
        return 0.05
    value = 0.30
    if _PERSONAL.search(stripped):
        value += 0.25
    if _REMEMBER.search(stripped):
        value += 0.20
    if _NUMBER.search(stripped):
        value += 0.10
    if _EMOTION.search(stripped):
        value += 0.10
    if len(stripped) >= 40:
        value += 0.10
    if len(stripped) < 8:
        value -= 0.15
    return min(1.0, max(0.02, value))


def worth_remembering(text: str) -> bool:
    """False for turns that carry nothing to recall (small talk, punctuation)."""
    stripped = text.strip()
    return bool(re.search(r"\w", stripped)) and not _SMALL_TALK.match(stripped)
