"""Pick a language per text segment, so each clause goes to a voice that can say it."""

from __future__ import annotations

import unicodedata


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


def detect_language(text: str, hint: str = "") -> str:
    """'zh' when Han characters dominate the letters, else 'en' (or the hint's base)."""
    if hint:
        return hint.split("-")[0].lower()
    han = sum(1 for ch in text if _is_cjk(ch))
    letters = sum(1 for ch in text if unicodedata.category(ch).startswith("L") and not _is_cjk(ch))
    return "zh" if han and han * 2 >= letters else "en"
