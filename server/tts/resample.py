"""Streamed resampling of PCM16 mono, for engines whose native rate differs from the stream's."""

from __future__ import annotations

import numpy as np
import soxr


class PcmResampler:
    """Feed PCM16LE bytes at `rate_in`, get PCM16LE bytes at `rate_out` (odd bytes carried over)."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self._stream = None if rate_in == rate_out else soxr.ResampleStream(rate_in, rate_out, 1, dtype="int16")
        self._carry = b""

    def feed(self, pcm: bytes) -> bytes:
        data = self._carry + pcm
        even = len(data) - len(data) % 2
        self._carry = data[even:]
        if self._stream is None:
            return data[:even]
        samples = np.frombuffer(data[:even], dtype="<i2")
        return bytes(np.asarray(self._stream.resample_chunk(samples), dtype="<i2").tobytes())

    def flush(self) -> bytes:
        """The resampler's tail, once the input is complete."""
        if self._stream is None:
            return b""
        tail = self._stream.resample_chunk(np.zeros(0, dtype="<i2"), last=True)
        return bytes(np.asarray(tail, dtype="<i2").tobytes())


def float_to_pcm16(audio: np.ndarray) -> bytes:
    """float audio in -1..1 → PCM16LE bytes (clipped)."""
    return bytes((np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes())
