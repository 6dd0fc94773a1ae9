"""Speech for PeroLink v1 clients: one complete WAV file per clause.

PeroCore's pet view hands each DataStream's data to WebAudio's
`decodeAudioData`, which only decodes whole files (its own backend sends
whole files); raw PCM chunks fail with EncodingError. So for those clients
the bridge collects a clause's PCM (the core marks the last chunk of each
clause with `AudioChunk.clause_end`) and sends it as one WAV file as soon as
the clause is complete: the first clause plays while the rest is still being
synthesized.

The buffer is bounded: a clause longer than MAX_CLAUSE_BYTES (about ten
seconds at 24 kHz mono) is sent in files of at most that size, and a file is
always cut between whole chunks of the core. The files are written by the
standard library's `wave` module, not hand-packed.
"""

from __future__ import annotations

import io
import wave

MAX_CLAUSE_BYTES = 480 * 1024
SAMPLE_WIDTH = 2  # PCM16, the only format the core sends


def wav_file(pcm: bytes, sample_rate_hertz: int, channels: int) -> bytes:
    """`pcm` (16-bit little-endian, interleaved) as a complete WAV file; a trailing partial frame is dropped."""
    usable = len(pcm) - len(pcm) % (SAMPLE_WIDTH * channels)
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(SAMPLE_WIDTH)
        writer.setframerate(sample_rate_hertz)
        writer.writeframes(pcm[:usable])
    return out.getvalue()


class ClauseFiles:
    """One turn's speech, cut into WAV files at clause ends (and at the size bound)."""

    def __init__(self, sample_rate_hertz: int, channels: int, max_bytes: int = MAX_CLAUSE_BYTES) -> None:
        self.sample_rate_hertz = sample_rate_hertz
        self.channels = channels
        self.max_bytes = max_bytes
        self._pcm = bytearray()

    def add(self, pcm: bytes, clause_end: bool) -> list[bytes]:
        """Buffer a chunk; returns the files it completed (none, one, or two when the bound cut first)."""
        files = []
        if self._pcm and len(self._pcm) + len(pcm) > self.max_bytes:
            files.append(self._take())
        self._pcm += pcm
        if clause_end or len(self._pcm) >= self.max_bytes:
            files.append(self._take())
        return files

    def finish(self) -> list[bytes]:
        """The rest at the end of the turn's speech (a clause with no marked end), if any."""
        return [self._take()] if self._pcm else []

    def _take(self) -> bytes:
        data = wav_file(bytes(self._pcm), self.sample_rate_hertz, self.channels)
        self._pcm.clear()
        return data
