"""The speech input format, checked once for every path into the recognizer.

Speech arrives as PCM16LE mono: over gRPC (`UserAudio.pcm` with its
`sample_rate_hertz`), over the Gateway (`DataStream` `audio/pcm;rate=N`,
parsed by the bridge) and decoded from WAV uploads. Every path calls
`check_pcm16` (or `check_rate` when only the rate is known yet), so a bad
chunk gets the same precise answer wherever it came from, before anything
is buffered or resampled. A chunk with an odd byte count is refused rather
than carried over: PCM16 samples are two bytes, so an odd chunk means the
client cut its buffer wrongly, and carrying a byte would silently shift
every later sample.
"""

from __future__ import annotations

MIN_RATE_HZ = 8000
MAX_RATE_HZ = 48000
DEFAULT_RATE_HZ = 16000


class PcmFormatError(ValueError):
    """Audio that is not PCM16 mono at a supported rate; the message says what is wrong."""


def check_rate(sample_rate_hertz: int) -> None:
    """Raise PcmFormatError unless the rate is within MIN_RATE_HZ..MAX_RATE_HZ."""
    if not MIN_RATE_HZ <= sample_rate_hertz <= MAX_RATE_HZ:
        raise PcmFormatError(f"sample rate {sample_rate_hertz} Hz not in {MIN_RATE_HZ}..{MAX_RATE_HZ}")


def check_pcm16(pcm: bytes, sample_rate_hertz: int) -> None:
    """Raise PcmFormatError for a bad rate or a chunk that is not whole 16-bit samples."""
    check_rate(sample_rate_hertz)
    if len(pcm) % 2:
        raise PcmFormatError(f"PCM16 audio needs whole 2-byte samples: got an odd chunk of {len(pcm)} bytes")
