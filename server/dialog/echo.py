"""No self-interruption: recognise the companion's own speech coming back through the microphone.

A client without echo cancellation (speakers, a laptop) feeds the answer's
audio back as `user_audio`, and the VAD calls it speech. The server knows
exactly what it sent, so before speech during playback may barge in, the
session asks `EchoGate.is_echo(onset_s)`: the normalised cross-correlation
between the utterance's latest voiced second of microphone audio and
everything this stream sent recently (at any lag, since the client plays its
buffer seconds after delivery). The utterance is anchored at its onset on the
microphone clock and its trailing silence dropped, because the check often
runs after the utterance ended: its final transcript comes after the
end-of-speech silence, and "the latest second" was then silence, nobody's
echo, so our own voice barged in (seen under load in
test_the_mesh_hearing_its_own_voice_does_not_interrupt_itself). A peak above
`threshold` means the microphone hears our own voice: the answer resumes and
the utterance starts no turn. Compared at 8 kHz, where speech still has its
shape and a minute of reference costs under 1 MiB; the FFT runs in a thread.

It recognises a direct or attenuated copy (a loopback, a speaker close to the
microphone); a strongly reverberant room lowers the peak, which is what a full
acoustic echo canceller would handle (MODELS.md lists candidates).

The guard window: speech whose onset falls within `guard_s` after our own
speech started playing is most likely that speech coming back, before the
correlation has a second of it to compare. `guarded()` says so, and the
session then judges the utterance without pausing the answer (real words can
still barge in, after the echo check). Both sides are timed on the
microphone's own clock, seconds of `user_audio` heard (the recognizer's
`SpeechStarted.at_s` clock): speech starts playing when a chunk is delivered
while nothing we sent is still playing by that clock (each chunk extends the
play-out by its duration, as the client plays them back to back).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soxr

RATE = 8000


@dataclass(frozen=True)
class EchoSettings:
    """The echo gate's tuning (each default defined here once)."""

    reference_s: float = 60.0  # how much sent speech is remembered (the client may play it much later)
    window_s: float = 1.0  # the microphone audio compared with it
    mic_s: float = 5.0  # how much microphone audio is kept to find an utterance's voiced end in
    threshold: float = 0.5  # correlation peak above this: our own voice
    guard_s: float = 0.3  # speech starting this soon after ours started playing does not pause it (0: off)


class _Ring:
    """The last `seconds` of 8 kHz audio, in blocks (bounded)."""

    def __init__(self, seconds: float) -> None:
        self._limit = int(seconds * RATE)
        self._blocks: deque[npt.NDArray[np.float32]] = deque()
        self._size = 0
        self._total = 0  # samples ever added: the clock `since` is read against

    def add(self, pcm: bytes, rate: int) -> None:
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
        if not len(samples):
            return
        block = soxr.resample(samples, rate, RATE) if rate != RATE else samples
        self._blocks.append(np.asarray(block, dtype=np.float32))
        self._size += len(block)
        self._total += len(block)
        while self._size - len(self._blocks[0]) >= self._limit:
            self._size -= len(self._blocks.popleft())

    def last(self, seconds: float | None = None) -> npt.NDArray[np.float32]:
        if not self._blocks:
            return np.zeros(0, dtype=np.float32)
        audio = np.concatenate(self._blocks)
        return audio[-int(seconds * RATE):] if seconds is not None else audio

    def since(self, start_s: float) -> npt.NDArray[np.float32]:
        """What was added from `start_s` (seconds of audio added before it) on, as far as kept."""
        skip = int(start_s * RATE) - (self._total - self._size)
        return self.last()[max(0, skip):]


class EchoGate:
    def __init__(self, settings: EchoSettings | None = None) -> None:
        self.settings = settings or EchoSettings()
        self._sent = _Ring(self.settings.reference_s)
        self._mic = _Ring(max(self.settings.mic_s, self.settings.window_s))
        self._heard_s = 0.0  # microphone clock: seconds of user_audio heard so far
        self._plays_until_s = 0.0  # ... when what we sent has finished playing
        self._playing_since_s: float | None = None  # ... when our latest stretch of speech started playing

    def sent(self, pcm: bytes, rate: int) -> None:
        """Speech delivered to the client (an audio_chunk)."""
        self._sent.add(pcm, rate)
        if self._heard_s >= self._plays_until_s:  # nothing of ours is playing: this chunk starts speech
            self._playing_since_s = self._heard_s
        self._plays_until_s = max(self._plays_until_s, self._heard_s) + len(pcm) // 2 / rate

    def heard(self, pcm: bytes, rate: int) -> None:
        """Microphone audio from the client (user_audio)."""
        self._mic.add(pcm, rate)
        self._heard_s += len(pcm) // 2 / rate

    def guarded(self, onset_s: float) -> bool:
        """Did speech with onset `onset_s` (microphone clock) start within the guard window of ours?"""
        since = self._playing_since_s
        return since is not None and since <= onset_s < since + self.settings.guard_s

    async def is_echo(self, onset_s: float) -> bool:
        """Is the utterance that started at `onset_s` (microphone clock) a copy of speech we sent?
        Its latest voiced `window_s` is compared, wherever the microphone has got to since."""
        voiced = without_trailing_silence(self._mic.since(onset_s))
        mic, ref = voiced[-int(self.settings.window_s * RATE):], self._sent.last()
        if len(mic) < RATE // 4 or len(ref) < len(mic):
            return False
        return await asyncio.to_thread(similarity, mic, ref) >= self.settings.threshold


FRAME = RATE // 50  # 20 ms


def without_trailing_silence(audio: npt.NDArray[np.float32], floor_db: float = -30.0) -> npt.NDArray[np.float32]:
    """`audio` up to its last 20 ms frame within `floor_db` of its loudest (all of it if none is)."""
    frames = len(audio) // FRAME
    if not frames:
        return audio
    rms = np.sqrt(np.mean(audio[: frames * FRAME].reshape(frames, FRAME) ** 2, axis=1))
    if rms.max() <= 0:
        return audio
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (floor_db / 20))
    return audio[: (int(loud[-1]) + 1) * FRAME]


def similarity(mic: npt.NDArray[np.float32], ref: npt.NDArray[np.float32]) -> float:
    """Peak normalised cross-correlation of `mic` against every position in `ref` (0..1)."""
    mic = mic - mic.mean()
    energy = float(np.sqrt(np.dot(mic, mic)))
    if energy < 1e-3:
        return 0.0  # silence is nobody's echo
    n, m = len(ref), len(mic)
    size = 1 << (n + m - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(ref, size) * np.conj(np.fft.rfft(mic, size)), size)[: n - m + 1]
    squares = np.concatenate([[0.0], np.cumsum(ref.astype(np.float64) ** 2)])
    window_energy = np.sqrt(np.maximum(squares[m:] - squares[:-m], 1e-12))
    return float(np.max(np.abs(corr) / (window_energy * energy)))
