"""Which script a character is in, and which of our two answer languages a text is in.

The mesh answers in Mandarin or English. A reply's language, the voice for a
clause, the reminder grammar to parse with and the memory's lexical handling
all follow from the characters in the text, so those rules are written once
here and each caller picks the one it means:

- `language_of`: "zh" as soon as any Han character appears ("Pero 你好" is a
  Mandarin request). The prompt note, the intent matcher, the time parser.
- `detect_language`: "zh" only when Han characters make up at least a third of
  the letters, else "en"; a hint ("en-US") wins outright. The voices, which
  must say most of a segment well.
- `mostly_cjk`: the memory's rule, over the wider East Asian set (Han, kana,
  Hangul: scripts written without spaces, indexed as character bigrams).

Han means the CJK Unified Ideographs, Extension A and the Compatibility
Ideographs (the BMP blocks; the Yijing hexagram symbols between Extension A
and the main block are symbols, not Han).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Language = Literal["zh", "en"]

# Regex character-class bodies (use inside [...]), for callers that build patterns around a script.
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
KANA = "\u3040-\u30ff"  # hiragana and katakana
HANGUL = "\uac00-\ud7af"  # precomposed syllables
CJK = KANA + HAN + HANGUL  # the scripts written without spaces between words

_HAN = re.compile(f"[{HAN}]")
_CJK = re.compile(f"[{CJK}]")
_ASCII_LETTER = re.compile(r"[a-zA-Z]")


def is_han(ch: str) -> bool:
    """True for one Han (Chinese) character."""
    code = ord(ch)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


def has_han(text: str) -> bool:
    """True when `text` contains at least one Han character."""
    return _HAN.search(text) is not None


def han_count(text: str) -> int:
    """How many Han characters `text` has (the unit Chinese length limits count in)."""
    return sum(1 for ch in text if is_han(ch))


def language_of(text: str) -> Language:
    """"zh" when the text has any Han character, else "en" (the two languages we answer in)."""
    return "zh" if has_han(text) else "en"


def detect_language(text: str, hint: str = "") -> str:
    """The hint's base language when there is one ("en-US" → "en"); otherwise "zh" when Han
    characters are at least half as many as the other letters, else "en"."""
    if hint:
        return hint.split("-")[0].lower()
    han = han_count(text)
    letters = sum(1 for ch in text if unicodedata.category(ch).startswith("L") and not is_han(ch))
    return "zh" if han and han * 2 >= letters else "en"


def mostly_cjk(text: str) -> bool:
    """True when CJK characters (Han, kana, Hangul) are at least a third of the CJK and Latin letters."""
    cjk = len(_CJK.findall(text))
    return cjk > 0 and cjk * 3 >= cjk + len(_ASCII_LETTER.findall(text))
