"""Mouth shapes for lip sync from the audio itself (an energy envelope).

None of the engines here reports phoneme timing through its streaming API, so
each audio chunk gets one weight from its loudness: `mouth_open` 0..1, mapped
from −50 dBFS (closed) to −15 dBFS (fully open) on the chunk's RMS. A chunk
spans 85–340 ms at 24 kHz, about a syllable; clients interpolate between
chunks. Cheap: one pass over ≤16 KiB of samples.
"""

from __future__ import annotations

import math

import numpy as np

CLOSED_DBFS = -50.0
OPEN_DBFS = -15.0


def mouth_shapes(pcm: bytes) -> dict[str, float]:
    """{"mouth_open": 0..1} for a chunk of PCM16LE mono (empty audio: closed)."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
    if not len(samples):
        return {"mouth_open": 0.0}
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    dbfs = 20 * math.log10(max(rms, 1e-9) / 32768.0)
    opened = (dbfs - CLOSED_DBFS) / (OPEN_DBFS - CLOSED_DBFS)
    return {"mouth_open": round(min(1.0, max(0.0, opened)), 3)}
