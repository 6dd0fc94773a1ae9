"""What did the user hear? Playout accounting for interrupted turns.

The core knows which audio chunks it delivered and which text segments they
carried; a segment whose audio was fully delivered was heard whole, a partly
delivered one is cut proportionally. A client that buffers ahead can say how
much it had played when the person stopped it (Interrupt.played_ms): then only
that much counts. A cut segment is cut (by its final byte count when the TTS
finished it, else by a speaking-rate estimate) at a word boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from server.text.language import detect_language

_MS_PER_CHAR = {"zh": 230.0, "en": 70.0}


@dataclass
class _Segment:
    text: str
    total_bytes: int | None = None
    delivered_bytes: int = 0


class PlayoutTracker:
    def __init__(self, sample_rate: int) -> None:
        self._bytes_per_ms = sample_rate * 2 / 1000
        self._segments: dict[int, _Segment] = {}
        self._chunks: dict[int, list[tuple[int, int]]] = {}

    def segment_started(self, seq: int, text: str) -> None:
        self._segments[seq] = _Segment(text)

    def segment_finished(self, seq: int, total_bytes: int) -> None:
        if seq in self._segments:
            self._segments[seq].total_bytes = total_bytes

    def chunk_built(self, chunk_seq: int, parts: list[tuple[int, int]]) -> None:
        self._chunks[chunk_seq] = parts

    def chunk_delivered(self, chunk_seq: int) -> None:
        for seq, n in self._chunks.pop(chunk_seq, []):
            if seq in self._segments:
                self._segments[seq].delivered_bytes += n

    def heard_text(self, played_ms: float | None = None) -> str:
        """What the user heard: the delivered audio, or only its first `played_ms` when the client
        said how much it had played (segments play in order, each one's bytes back to back)."""
        heard: list[str] = []
        for segment, fraction in self._played(played_ms):
            if fraction <= 0:
                break
            if fraction >= 1:
                heard.append(segment.text)
                continue
            if cut := _cut(segment.text, fraction):
                heard.append(cut)
            break
        return _join(heard)

    def all_heard(self, played_ms: float | None = None) -> bool:
        """Every segment's audio delivered whole (and, given `played_ms`, played whole)."""
        return all(fraction >= 1 for _, fraction in self._played(played_ms))

    def _played(self, played_ms: float | None) -> Iterator[tuple[_Segment, float]]:
        """Each segment in playing order with the fraction of it heard: what was delivered, capped
        by what the client played when it said (`played_ms`)."""
        budget = None if played_ms is None else max(0.0, played_ms) * self._bytes_per_ms
        for seq in sorted(self._segments):
            segment = self._segments[seq]
            yield segment, self._fraction(segment, budget)
            if budget is not None:
                budget -= min(budget, segment.delivered_bytes)

    def _fraction(self, segment: _Segment, budget: float | None = None) -> float:
        played = segment.delivered_bytes if budget is None else min(segment.delivered_bytes, budget)
        if segment.total_bytes:
            return min(1.0, played / segment.total_bytes)
        ms = played / self._bytes_per_ms
        expected = len(segment.text) * _MS_PER_CHAR[detect_language(segment.text)]
        return min(0.99, ms / expected) if expected else 0.0


def _cut(text: str, fraction: float) -> str:
    """The heard part of a segment, ending at a word boundary in English: a word cut in half was not
    heard (stored as heard, "continue" would resume after it), so before the first space nothing was."""
    end = int(len(text) * fraction)
    if detect_language(text) == "en" and end < len(text):
        space = text.rfind(" ", 0, end + 1)
        end = max(space, 0)
    return text[:end].rstrip()


def _join(parts: list[str]) -> str:
    out = ""
    for part in parts:
        if out and out[-1].isascii() and part[:1].isascii():
            out += " "
        out += part
    return out
