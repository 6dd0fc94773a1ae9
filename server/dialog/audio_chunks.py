"""Re-chunk TTS audio into the client's 4–16 KiB chunks, remembering what each holds.

The first chunk goes out at the minimum size (lower first-audio latency), later
ones at the target size; at the end of a segment the remainder is flushed,
padded with silence up to the minimum (a pause of at most ~85 ms at 24 kHz,
where a clause ends anyway). Each chunk lists which segments' bytes it
carries, so playout accounting can tell what text was heard.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_BYTES = 4096
TARGET_BYTES = 8192
MAX_BYTES = 16384


@dataclass
class Chunk:
    pcm: bytes
    parts: list[tuple[int, int]]  # (segment_seq, bytes of that segment in this chunk)


class PcmChunker:
    def __init__(self, min_bytes: int = MIN_BYTES, target_bytes: int = TARGET_BYTES) -> None:
        self._min = min_bytes
        self._target = target_bytes
        self._buffer = bytearray()
        self._parts: list[tuple[int, int]] = []
        self.emitted = 0

    def add(self, segment_seq: int, pcm: bytes) -> list[Chunk]:
        self._buffer += pcm
        if self._parts and self._parts[-1][0] == segment_seq:
            self._parts[-1] = (segment_seq, self._parts[-1][1] + len(pcm))
        else:
            self._parts.append((segment_seq, len(pcm)))
        out = []
        while len(self._buffer) >= (self._target if self.emitted else self._min):
            out.append(self._take(self._target if self.emitted else self._min))
        return out

    def end_segment(self) -> list[Chunk]:
        if not self._buffer:
            return []
        pad = max(0, self._min - len(self._buffer))
        self._buffer += bytes(pad)
        return [self._take(len(self._buffer))]

    def _take(self, size: int) -> Chunk:
        size = min(size, MAX_BYTES, len(self._buffer))
        pcm = bytes(self._buffer[:size])
        del self._buffer[:size]
        parts, remaining = [], size
        while remaining and self._parts:
            seq, n = self._parts[0]
            used = min(n, remaining)
            parts.append((seq, used))
            remaining -= used
            if used == n:
                self._parts.pop(0)
            else:
                self._parts[0] = (seq, n - used)
        self.emitted += 1
        return Chunk(pcm, parts)
