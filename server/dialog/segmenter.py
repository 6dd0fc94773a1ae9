"""Cut streamed text into speakable clauses for TTS, the first one early.

Speech starts when the first clause is complete, so the first cut happens at
the first comma-like pause once a few characters exist — or, when the model
has produced a few words without any punctuation, at a word boundary (a slow
local model may take seconds to reach its first comma, and every word waited
for is a token interval of silence). How many is language-aware: three
English words ("I think that") or six Chinese characters ("我觉得我们明")
are already a phrase a voice can say with natural prosody; later clauses
wait for a sentence end (or a comma after a longer run) so prosody stays
natural.
Chinese and English punctuation are both understood; a '.' only ends a
sentence before whitespace, so "3.14" and "e.g." inside words stay whole.
"""

from __future__ import annotations

from server.text.language import han_count

SENTENCE_END = set("。！？!?；;…\n")
PAUSE = set("，、,：:")
FIRST_MIN_CHARS = 6
FIRST_MAX_WORDS = 3  # English: first clause cut at a space after this many words without punctuation
FIRST_MAX_HAN = 6  # Chinese: ... after this many characters without punctuation
PAUSE_MIN_CHARS = 24
MAX_CHARS = 160


class ClauseSegmenter:
    def __init__(self) -> None:
        self._buffer = ""
        self._emitted = 0

    def feed(self, delta: str) -> list[str]:
        """Add text; return the clauses it completed (possibly none)."""
        self._buffer += delta
        clauses: list[str] = []
        while (cut := self._find_cut()) is not None:
            clause, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if clause:
                clauses.append(clause)
                self._emitted += 1
        return clauses

    def flush(self) -> str:
        """The unfinished tail (end of the answer)."""
        rest, self._buffer = self._buffer.strip(), ""
        return rest

    def _find_cut(self) -> int | None:
        text = self._buffer
        min_pause = FIRST_MIN_CHARS if self._emitted == 0 else PAUSE_MIN_CHARS
        for i, ch in enumerate(text):
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if ch in SENTENCE_END or (ch == "." and nxt.isspace()):
                if len(text[: i + 1].strip()) > 1:
                    return _after_closers(text, i + 1)
            elif ch in PAUSE and len(text[:i].strip()) >= min_pause and (ch not in ",:" or nxt.isspace()):
                return i + 1
            if i >= MAX_CHARS:
                space = text.rfind(" ", 0, i)
                return space + 1 if space > MAX_CHARS // 2 else i
        return self._early_first_cut(text) if self._emitted == 0 else None

    @staticmethod
    def _early_first_cut(text: str) -> int | None:
        """The first clause, cut without punctuation once it is long enough to say."""
        han = han_count(text)
        if han >= FIRST_MAX_HAN:
            return len(text)
        words = text.split()
        if len(words) > FIRST_MAX_WORDS and not text[-1].isspace():
            return text.rfind(" ") + 1  # the last word may still be growing: keep it
        if len(words) >= FIRST_MAX_WORDS and text[-1].isspace():
            return len(text)
        return None


def _after_closers(text: str, index: int) -> int:
    """Keep closing quotes/brackets with the sentence they end."""
    while index < len(text) and text[index] in "\"'”’）)」』":
        index += 1
    return index
