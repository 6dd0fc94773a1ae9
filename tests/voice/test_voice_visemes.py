"""The energy envelope behind `audio_chunk.visemes`: silence closes the mouth, speech opens it."""

from __future__ import annotations

import numpy as np

from server.tts.visemes import mouth_shapes


def tone(amplitude: float, seconds: float = 0.2, rate: int = 24000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 220 * t) * amplitude * 32767).astype("<i2").tobytes()


def test_mouth_follows_loudness() -> None:
    assert mouth_shapes(b"") == {"mouth_open": 0.0}
    assert mouth_shapes(b"\0\0" * 4000) == {"mouth_open": 0.0}
    quiet, medium, loud = (mouth_shapes(tone(a))["mouth_open"] for a in (0.005, 0.05, 0.5))
    assert 0.0 <= quiet < medium < loud == 1.0
    assert mouth_shapes(tone(0.5) + b"\x01")["mouth_open"] == 1.0  # an odd trailing byte is ignored
