"""Cut streamed text into speakable clauses for TTS, the first one early.

Speech starts when the first clause is complete, so the first cut happens at
the first comma-like pause once a few characters exist; later clauses wait
for a sentence end (or a comma after a longer run) so prosody stays natural.
Chinese and English punctuation are both understood; a '.' only ends a
sentence before whitespace, so "3.14" and "e.g." inside words stay whole.
"""

from __future__ import annotations

SENTENCE_END = set("。！？!?；;…\n")
PAUSE = set("，、,：:")
FIRST_MIN_CHARS = 6
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
        return None


def _after_closers(text: str, index: int) -> int:
    """Keep closing quotes/brackets with the sentence they end."""
    while index < len(text) and text[index] in "\"'”’）)」』":
        index += 1
    return index
