"""The echo gate: a delayed, quieter copy of what was sent is recognised; other speech is not."""

from __future__ import annotations

import numpy as np

from server.dialog.echo import EchoGate, EchoSettings, similarity


def voice_like(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 8000)
    carrier = np.convolve(rng.normal(0, 1, n), np.ones(4) / 4, "same")  # broadband, below ~2 kHz
    syllables = np.abs(np.sin(np.linspace(0, seconds * 4 * np.pi, n)))  # four a second
    return (carrier * syllables * 0.5).astype(np.float32)


def test_similarity_finds_a_delayed_copy_and_rejects_other_audio() -> None:
    sent = voice_like(10, 1)
    assert similarity(0.3 * sent[30000:38000], sent) > 0.95
    assert similarity(voice_like(1, 2), sent) < 0.3
    assert similarity(np.zeros(8000, dtype=np.float32), sent) == 0.0


def sending(seconds: float, seed: int) -> tuple[EchoGate, np.ndarray]:
    """A gate that delivered `seconds` of voice-like speech, in 24 kHz chunks as the core sends them."""
    sent = (voice_like(seconds, seed) * 20000).astype("<i2")
    gate = EchoGate()
    for i in range(0, len(sent), 4000):  # resampled to 8 kHz inside
        gate.sent(np.repeat(sent[i:i + 4000], 3).tobytes(), 24000)
    return gate, sent


async def test_the_gate_compares_an_utterance_with_what_was_sent() -> None:
    gate, sent = sending(6, 3)
    gate.heard((voice_like(1, 4) * 20000).astype("<i2").tobytes(), 8000)  # someone else, from 0 s
    assert not await gate.is_echo(0.0)
    gate.heard((sent[16000:24000] // 2).tobytes(), 8000)  # our own voice, quieter, from 1 s
    assert await gate.is_echo(1.0)


async def test_an_utterance_checked_after_its_end_of_speech_silence_is_still_recognised() -> None:
    """The final transcript comes after the end-of-speech silence: the check must not read that
    silence (nobody's echo) instead of the utterance."""
    gate, sent = sending(6, 5)
    gate.heard(b"\0\0" * 4000, 8000)  # 0.5 s of quiet before it
    gate.heard((sent[8000:24000] // 2).tobytes(), 8000)  # 2 s of our own voice from 0.5 s
    gate.heard(b"\0\0" * 12000, 8000)  # then 1.5 s of silence: the end of speech and the decode
    assert await gate.is_echo(0.5)
    gate.heard((voice_like(2, 6) * 20000).astype("<i2").tobytes(), 8000)  # the user, from 4 s
    gate.heard(b"\0\0" * 12000, 8000)
    assert not await gate.is_echo(4.0)


def pcm_s(seconds: float, rate: int = 16000) -> bytes:
    """`seconds` of (silent) PCM16: only its length matters to the guard window's clock."""
    return b"\0\0" * int(seconds * rate)


def test_the_guard_window_covers_onsets_just_after_our_speech_starts_playing() -> None:
    gate = EchoGate(EchoSettings(guard_s=0.3))
    gate.heard(pcm_s(1.0), 16000)
    assert not gate.guarded(1.1)  # nothing sent yet: no window
    for _ in range(10):  # 2 s of speech delivered at once (the voices run faster than real time)
        gate.sent(pcm_s(0.2, 24000), 24000)
    assert gate.guarded(1.0) and gate.guarded(1.29)  # the microphone clock was at 1.0 s when it started
    assert not gate.guarded(0.95)  # the user spoke before our speech began: not its echo
    assert not gate.guarded(1.3)
    gate.heard(pcm_s(1.5), 16000)  # 2.5 s: still playing what was sent, more follows
    gate.sent(pcm_s(0.2, 24000), 24000)
    assert not gate.guarded(2.55)  # the same stretch of speech goes on: no new window
    gate.heard(pcm_s(1.0), 16000)  # 3.5 s: it ended at 3.2 s
    gate.sent(pcm_s(0.2, 24000), 24000)  # the next answer starts playing
    assert gate.guarded(3.6) and not gate.guarded(3.8)
    off = EchoGate(EchoSettings(guard_s=0.0))
    off.sent(pcm_s(1.0, 24000), 24000)
    assert not off.guarded(0.0)
