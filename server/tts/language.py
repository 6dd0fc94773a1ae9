"""Pick a language per piece of text, so each piece goes to a voice that can say it.

Companion replies mix scripts ("我喜欢用 Python 写代码。"): a Mandarin voice
cannot read Latin words and an English voice cannot read Han characters. So a
segment is split into runs of one script (`split_language_runs`), and each run
into clauses (`split_clauses`) so synthesis of the first clause can start (and
be heard) before the rest is done.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from server.text.language import is_han


def _script_language(ch: str) -> str | None:
    """The language a letter's script implies ('' for Latin: decided by the hint), None if neutral."""
    if is_han(ch):
        return "zh"
    if not unicodedata.category(ch).startswith("L"):
        return None  # digits, punctuation, spaces, symbols: belong to their neighbours
    code = ord(ch)
    if 0x3040 <= code <= 0x30FF:
        return "ja"
    if 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF:
        return "ko"
    if 0x0400 <= code <= 0x04FF:
        return "ru"
    return ""


@dataclass(frozen=True)
class LanguageRun:
    """A stretch of text in one language."""

    language: str
    text: str


def split_language_runs(text: str, hint: str = "") -> list[LanguageRun]:
    """Split `text` where the script changes. Han → "zh"; Latin → the hint's language unless the
    hint is "zh" (then "en"), default "en"; kana, Hangul, Cyrillic → "ja", "ko", "ru". Neutral
    characters (digits, punctuation, spaces) stay with the run before them (leading ones with
    the first run), so "我有3个" stays one Mandarin run and "Hello, 你好" keeps its comma."""
    base = hint.split("-")[0].lower() if hint else ""
    latin = base if base and base != "zh" else "en"
    runs: list[tuple[str, list[str]]] = []
    leading: list[str] = []
    for ch in text:
        script = _script_language(ch)
        if script is None:
            (runs[-1][1] if runs else leading).append(ch)
            continue
        language = script or latin
        if runs and runs[-1][0] == language:
            runs[-1][1].append(ch)
        else:
            runs.append((language, [*leading, ch] if not runs else [ch]))
    pieces = [LanguageRun(language, "".join(chars).strip()) for language, chars in runs]
    return [piece for piece in pieces if piece.text]


# Clause ends: CJK and Latin clause punctuation (Latin ones only before a space or the end, so
# "3.5" and "e.g." inside words survive), and line breaks.
_CLAUSE_END = re.compile(r"[，。！？；：、…]+|[,.!?;:]+(?=\s|$)|\n+")
MIN_CLAUSE_CHARS = 4


def split_clauses(text: str, min_chars: int = MIN_CLAUSE_CHARS) -> list[str]:
    """Clauses with their punctuation, in order. A fragment shorter than `min_chars` joins the
    next clause (so "好，" is not spoken alone), a short last one joins the previous clause."""
    clauses: list[str] = []
    current = ""
    position = 0
    for match in _CLAUSE_END.finditer(text):
        current += text[position:match.end()]
        position = match.end()
        if len(current.strip()) >= min_chars:
            clauses.append(current.strip())
            current = ""
    current += text[position:]
    if current.strip():
        if clauses and len(current.strip()) < min_chars:
            clauses[-1] = (clauses[-1] + current).strip()
        else:
            clauses.append(current.strip())
    return clauses
