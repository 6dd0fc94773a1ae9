"""As I was saying: "continue" after an interrupt speaks what the user did not hear.

An interrupted answer is stored whole with what the user heard of it
(history.py). When the next words only ask to go on ("continue", "go on",
"what were you saying", "继续", "你刚才说到哪了"), the turn speaks the stored
remainder instead of asking the model again: it is exactly what was about to
be said, it costs no generation, and it starts where the user stopped hearing.
"""

from __future__ import annotations

from server.dialog.barge_in import EN_BACKCHANNELS, normalise

CONTINUE_EN = frozenset((
    "continue", "please continue", "continue please", "go on", "please go on", "go ahead", "keep going",
    "carry on", "what were you saying", "you were saying", "as you were saying", "where were we",
    "where were you", "sorry go on", "sorry continue", "sorry please continue", "then what", "and then",
))
CONTINUE_ZH = frozenset((
    "继续", "继续说", "接着说", "你继续", "请继续", "你继续说", "继续讲", "接着讲", "你接着说", "然后呢",
    "你刚才说到哪了", "刚才说到哪了", "你说到哪了", "说到哪了", "你刚才说到哪儿了", "你刚才说什么",
    "你刚才说什么来着", "刚才说到哪儿了",
))
_ZH_TAIL = "吧啊呀呢嘛"


def is_continue_request(text: str) -> bool:
    """True when the user only asks the companion to go on ("Okay, go on." / "嗯，继续吧")."""
    words = normalise(text).split()
    while words and words[0] in EN_BACKCHANNELS | {"嗯", "好", "好的", "对"}:
        words = words[1:]
    if not words:
        return False
    phrase = " ".join(words)
    if phrase in CONTINUE_EN:
        return True
    joined = "".join(words).rstrip(_ZH_TAIL)
    return joined in CONTINUE_ZH


def unheard_remainder(text: str, heard: str) -> str:
    """The part of `text` after what was `heard` (whitespace may differ; a divergence ends the match)."""
    target = [ch for ch in heard if not ch.isspace()]
    i = matched = 0
    while i < len(text) and matched < len(target):
        if not text[i].isspace():
            if text[i] != target[matched]:
                break
            matched += 1
        i += 1
    return text[i:].strip()
