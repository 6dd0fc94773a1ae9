"""Streaming recognition: PCM chunks in, speech-start / partial / final events out.

How the dialog core uses it (one recognizer per Converse stream)::

    recognizer = StreamingRecognizer(load_transcriber("base"),  # both load in a thread, once, at start
                                     turn_detector=load_turn_detector())
    # request reader, for every user_audio:
    await recognizer.feed(msg.pcm, msg.sample_rate_hertz or 16000)
    if msg.is_end:
        await recognizer.end()
    # a task owned by the stream:
    async for event in recognizer.events():
        match event:
            case SpeechStarted():      # ≥ min_speech_ms of voice: barge in if the assistant is speaking
            case PartialTranscript():  # → transcription{text, is_final=false}
            case FinalTranscript():    # → transcription{text, is_final=true}; non-empty text starts a turn
    await recognizer.close()           # when the stream ends

Endpointing: Silero VAD per 32 ms frame with hysteresis (speech above 0.5,
silence below 0.35). An utterance starts after `min_speech_ms` of voiced
frames (so a cough, a click or a burst of echo does not count). It ends on
`end()` (the client's is_end), at `max_utterance_s` (Whisper's 30 s window),
or after a silence whose length depends on what was said:

- with an end-of-turn detector (turn_detector.py): `judge_after_ms` (≈100 ms)
  into a silence the utterance so far is decoded and, at the same time, judged
  by the model;
  the verdict combines both. Judged complete, the turn ends once the silence
  reaches `complete_silence_ms` (≈250 ms; the decode already made is the
  final, so no time is lost); judged unfinished, or not judged yet, only at
  `incomplete_silence_ms` (≈2.5 s). Speech that resumes discards the verdict.
  Silence is counted in audio; once judged, the rest of the limit also runs
  in wall time, so a client that stops sending audio still gets its turn ended.
  The decision therefore comes when the decode does (Whisper base, quick
  window: ~0.3 s on a quiet machine), never before `complete_silence_ms`.
  A pause that turns back into speech wastes its decode; one still queued
  behind another decode when that happens is skipped, so pauses never pile
  decodes up in front of the final.
- without one (no model file, `--turn-model none`): after `end_silence_ms`.

`pre_roll_ms` of audio before the onset is kept so the first syllable is not clipped.

Partials: Whisper does not stream, so the growing utterance is re-decoded
after every `partial_interval_s` of new audio (measured in audio time, which
is wall time for a live microphone), off the event loop, never more than one
at a time per recognizer and never while the shared model is busy with
another decode (partials are skipped, not queued). Finals decode in a lane of
their own, so a final never waits for a partial to finish. A partial of an utterance that has meanwhile been
finalised is dropped, so events of one utterance always end with its final.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soxr

from server.aio import TaskOwner
from server.asr.transcriber import SAMPLE_RATE, DecodeSkipped, Transcript, WhisperTranscriber
from server.asr.turn_detector import TurnDetector, TurnVerdict
from server.asr.vad import FRAME_SAMPLES, SileroVad

log = logging.getLogger(__name__)
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE


@dataclass(frozen=True)
class EndpointConfig:
    """Tuning of speech detection and partial updates (defaults suit a close microphone)."""

    speech_threshold: float = 0.5
    silence_threshold: float = 0.35
    min_speech_ms: int = 300
    end_silence_ms: int = 700  # silence that ends an utterance without an end-of-turn model
    complete_silence_ms: int = 250  # with the model: silence that ends one judged complete
    incomplete_silence_ms: int = 2500  # with the model: silence that ends one judged unfinished
    # Silence after which the utterance so far is decoded (the speculative final) and judged; also
    # the trailing silence a final's audio keeps. Measured (benchmarks/voice_dialog.py, scripted
    # model, quiet machine, same run): end of speech -> first audio p50 588-627 ms (en) and
    # 611-659 (zh) at 200 ms, 520-525 and 537-554 at 100 ms.
    judge_after_ms: int = 100
    pre_roll_ms: int = 300
    partial_interval_s: float = 1.5
    max_utterance_s: float = 28.0

    def __post_init__(self) -> None:
        if not 0 < self.judge_after_ms <= self.complete_silence_ms <= self.incomplete_silence_ms:
            raise ValueError("turn timing must satisfy 0 < judge-after-ms <= complete-silence-ms <= "
                             f"incomplete-silence-ms (got {self.judge_after_ms}, {self.complete_silence_ms}, "
                             f"{self.incomplete_silence_ms})")


@dataclass(frozen=True)
class SpeechStarted:
    """The user has been speaking for at least `min_speech_ms` (the barge-in signal)."""

    utterance: int
    at_s: float  # stream time of the onset, seconds since the first fed sample


@dataclass(frozen=True)
class PartialTranscript:
    """The utterance so far (may still change). Empty only for an utterance decoded quickly
    (`decode_quickly`): a decode of it found no words so far."""

    utterance: int
    text: str


@dataclass(frozen=True)
class FinalTranscript:
    """The utterance's final text. Empty text: nothing intelligible; start no turn."""

    utterance: int
    text: str
    language: str
    reason: str  # "end_of_turn" (judged complete) | "end_of_speech" (silence limit) | "is_end" | "max_length"
    audio_s: float
    decode_s: float
    latency_s: float  # from the end of the utterance (endpoint or end()) to this event
    silence_s: float = 0.0  # trailing silence heard before the endpoint (0 for is_end, max_length)
    verdict: TurnVerdict | None = None  # the end-of-turn verdict that applied, if one was made


RecognitionEvent = SpeechStarted | PartialTranscript | FinalTranscript


@dataclass(frozen=True)
class _Ending:
    """Why and how an utterance ended, carried to its final."""

    reason: str
    silence_s: float
    verdict: TurnVerdict | None
_CLOSED = object()


class _Wanted:
    """Whether a speculative decode's result is still wanted (read on the decode lane's thread)."""

    def __init__(self) -> None:
        self.value = True


class StreamingRecognizer:
    """One audio stream's recognizer. Not thread-safe: call it from one event loop."""

    def __init__(self, transcriber: WhisperTranscriber, config: EndpointConfig | None = None,
                 turn_detector: TurnDetector | None = None) -> None:
        self.transcriber = transcriber
        self.config = config or EndpointConfig()
        # Without a model the detector cannot judge: silence alone then ends utterances.
        self._detector = turn_detector if turn_detector is not None and turn_detector.available else None
        self._vad = SileroVad()
        self._events: asyncio.Queue[RecognitionEvent | object] = asyncio.Queue()
        self._tasks = TaskOwner("asr")
        self._resampler: soxr.ResampleStream | None = None
        self._resampler_rate = SAMPLE_RATE
        self._odd_byte = b""
        self._pending = np.zeros(0, dtype=np.float32)  # samples not yet a whole VAD frame
        pre_roll_frames = max(1, round(self.config.pre_roll_ms / 1000 / FRAME_S))
        self._pre_roll: deque[npt.NDArray[np.float32]] = deque(maxlen=pre_roll_frames)
        self._utterance = 0  # id of the current (or next) utterance
        self._frames: list[npt.NDArray[np.float32]] = []  # audio of the current utterance
        self._voiced = 0  # voiced frames while confirming an onset
        self._speaking = False
        self._silent = 0  # consecutive silent frames while speaking
        self._frame_index = 0  # frames stepped through the VAD so far
        self._onset_frame = 0
        self._partial_at = 0  # utterance length (frames) at the last partial decode
        self._partial_task: asyncio.Task[None] | None = None
        self._last_partial = ""
        self._final_chain: asyncio.Task[None] | None = None
        # A decode started when the user fell silent, reused as the final if the silence lasts.
        self._speculative: asyncio.Task[Transcript] | None = None
        self._verdict: TurnVerdict | None = None  # of the current silence, once judged
        self._judging: asyncio.Task[TurnVerdict | None] | None = None
        self._quick_utterance = -1  # decoded quickly: judged as a possible barge-in (decode_quickly)
        self._judge_after = max(1, round(self.config.judge_after_ms / 1000 / FRAME_S))  # in frames
        self._guess_wanted: _Wanted | None = None  # of the current silence's guess; speech resuming clears it
        self._closed = False

    @property
    def speaking(self) -> bool:
        """True between SpeechStarted and the end of that utterance."""
        return self._speaking

    @property
    def stream_s(self) -> float:
        """Stream time of the audio stepped through the VAD so far (the clock of `SpeechStarted.at_s`)."""
        return self._frame_index * FRAME_S

    @property
    def trailing_silence_s(self) -> float:
        """Silence since the current utterance's last voiced frame (0 when no utterance is open)."""
        return self._silent * FRAME_S if self._speaking else 0.0

    def decode_quickly(self, utterance: int) -> None:
        """Utterance `utterance` is judged as a possible barge-in while the answer waits paused:
        its partial decodes use the transcriber's quick window too (every utterance's guess and
        final already do), and a guess that found no words still goes out, as an empty partial,
        so the judge can resume after a cough without waiting for the final."""
        self._quick_utterance = utterance

    async def feed(self, pcm: bytes, sample_rate_hertz: int = SAMPLE_RATE) -> None:
        """Add PCM16LE mono audio (any chunk size, any rate 8–48 kHz; resampled to 16 kHz)."""
        if self._closed:
            raise RuntimeError("recognizer is closed")
        audio = self._to_float16k(pcm, sample_rate_hertz or SAMPLE_RATE)
        if not len(audio):
            return
        data = np.concatenate([self._pending, audio]) if len(self._pending) else audio
        whole = len(data) - len(data) % FRAME_SAMPLES
        self._pending = data[whole:].copy()
        if not whole:
            return
        frames = data[:whole]
        if whole > 32 * FRAME_SAMPLES:  # a big upload (e.g. a WAV file): keep the loop responsive
            probs = await asyncio.to_thread(self._vad.probabilities, frames)
        else:
            probs = self._vad.probabilities(frames)
        for i, prob in enumerate(probs):
            self._step(frames[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES], float(prob))

    async def end(self) -> None:
        """The client marked the end of the utterance (is_end): finalise what was heard."""
        if self._closed:
            return
        heard = self._speaking or self._voiced > 0
        if heard and len(self._pending) and self._silent < self._judge_after:
            self._frames.append(self._pending)
        self._pending = np.zeros(0, dtype=np.float32)
        self._finalize("is_end", heard=heard)

    async def events(self) -> AsyncIterator[RecognitionEvent]:
        """Events in order until `close()`."""
        while (event := await self._events.get()) is not _CLOSED:
            assert isinstance(event, SpeechStarted | PartialTranscript | FinalTranscript)
            yield event

    async def close(self) -> None:
        """Stop: pending decodes are abandoned, `events()` ends."""
        if self._closed:
            return
        self._closed = True
        await self._tasks.close()
        self._events.put_nowait(_CLOSED)

    async def settle(self) -> TurnVerdict | None:
        """Wait for the end-of-turn judgement of the latest silence and return it (None: none was
        made, or speech resumed first). For tests and benchmarks: a live stream never waits for it."""
        judging = self._judging
        if judging is None:
            return None
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(judging)
        return judging.result() if not judging.cancelled() else None

    async def drain(self) -> None:
        """Wait until every final already triggered has been emitted (tests, benchmarks, shutdown)."""
        while self._final_chain is not None and not self._final_chain.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._final_chain)

    # --- audio plumbing -------------------------------------------------------------------------

    def _to_float16k(self, pcm: bytes, rate: int) -> npt.NDArray[np.float32]:
        if not 8000 <= rate <= 48000:
            raise ValueError(f"sample rate {rate} not in 8000..48000")
        data = self._odd_byte + pcm
        even = len(data) - len(data) % 2
        self._odd_byte = data[even:]
        samples = np.frombuffer(data[:even], dtype="<i2").astype(np.float32) / 32768.0
        if rate == SAMPLE_RATE:
            return samples
        if self._resampler is None or self._resampler_rate != rate:
            self._resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
            self._resampler_rate = rate
        return np.asarray(self._resampler.resample_chunk(samples), dtype=np.float32)

    # --- endpointing ----------------------------------------------------------------------------

    def _step(self, frame: npt.NDArray[np.float32], prob: float) -> None:
        cfg = self.config
        self._frame_index += 1
        if not self._speaking:
            if prob >= cfg.speech_threshold or (self._voiced and prob >= cfg.silence_threshold):
                if not self._voiced:
                    self._frames = list(self._pre_roll)
                    self._onset_frame = self._frame_index - 1
                self._voiced += 1
                self._frames.append(frame)
                if self._voiced * FRAME_S * 1000 >= cfg.min_speech_ms:
                    self._speaking = True
                    self._silent = 0
                    self._partial_at = len(self._frames)
                    self._last_partial = ""
                    self._emit(SpeechStarted(self._utterance, self._onset_frame * FRAME_S))
            else:
                if self._voiced:  # too short to be speech: a cough or a click
                    self._voiced = 0
                    self._frames = []
                self._pre_roll.append(frame)
            return
        self._frames.append(frame)
        if prob < cfg.silence_threshold:
            self._silent += 1
            if self._silent == self._judge_after:
                self._speculate()
        else:
            self._silent = 0
            if self._guess_wanted is not None:  # the user went on speaking: that guess (and its
                self._guess_wanted.value = False  # verdict) is stale; not yet decoding, it never will
            self._speculative, self._guess_wanted = None, None
            self._verdict = None
        if self._silent * FRAME_S * 1000 >= self._silence_limit_ms():
            complete = self._verdict is not None and self._verdict.complete
            self._finalize("end_of_turn" if complete else "end_of_speech")
        elif len(self._frames) * FRAME_S >= cfg.max_utterance_s:
            self._finalize("max_length")
        else:
            self._maybe_partial()

    def _silence_limit_ms(self) -> int:
        if self._detector is None:
            return self.config.end_silence_ms
        if self._verdict is not None and self._verdict.complete:
            return self.config.complete_silence_ms
        return self.config.incomplete_silence_ms

    async def _judge(self, guess: asyncio.Task[Transcript], audio: npt.NDArray[np.float32]) -> TurnVerdict | None:
        """The end-of-turn verdict of this silence: the model (on its own thread) and the decode
        of the same audio (already running) together. Ends the utterance at once when it is judged
        complete and the silence is already long enough; otherwise `_step` ends it later."""
        assert self._detector is not None
        probability, model_s = await self._detector.probability(audio)
        try:
            text = (await guess).text
        except Exception:
            text = ""  # a failed guess: the model decides alone; the final decodes again
        if self._speculative is not guess or self._closed:
            return None  # the user went on speaking, or the utterance ended meanwhile
        verdict = self._verdict = self._detector.judge(probability, text, model_s)
        log.debug("end of turn: %s (model %.2f in %.0f ms, transcript %+.1f) %r", verdict.complete,
                  probability, model_s * 1000, verdict.text_evidence, text)
        remaining_ms = self._silence_limit_ms() - self._silent * FRAME_S * 1000
        if remaining_ms <= 0:
            self._finalize("end_of_turn" if verdict.complete else "end_of_speech")
        else:
            self._tasks.spawn(self._end_after(guess, remaining_ms / 1000), "end-of-turn-timer")
        return verdict

    async def _end_after(self, guess: asyncio.Task[Transcript], seconds: float) -> None:
        """The rest of the silence limit in wall time: a client that stops sending audio without an
        is_end (a push-to-talk release, a network stall) still gets its utterance ended. Audio that
        keeps coming usually gets there first, in `_step`; speech that resumes makes this a no-op."""
        await asyncio.sleep(seconds)
        if self._speculative is guess and not self._closed:
            complete = self._verdict is not None and self._verdict.complete
            self._finalize("end_of_turn" if complete else "end_of_speech")

    # --- decoding -------------------------------------------------------------------------------

    def _maybe_partial(self) -> None:
        grown = (len(self._frames) - self._partial_at) * FRAME_S
        trailing_silence_ms = self._silent * FRAME_S * 1000
        if (grown < self.config.partial_interval_s or trailing_silence_ms > 200
                or (self._partial_task is not None and not self._partial_task.done())
                or self.transcriber.busy):
            return
        self._partial_at = len(self._frames)
        audio = np.concatenate(self._frames)
        self._partial_task = self._tasks.spawn(self._partial(self._utterance, audio), "partial")

    async def _partial(self, utterance: int, audio: npt.NDArray[np.float32]) -> None:
        transcript = await self.transcriber.transcribe_async(audio, quick=utterance == self._quick_utterance)
        if utterance != self._utterance or not transcript.text or transcript.text == self._last_partial:
            return  # finalised meanwhile, or nothing new
        self._last_partial = transcript.text
        self._emit(PartialTranscript(utterance, transcript.text))

    def _speculate(self) -> None:
        """Start decoding as soon as the user falls silent: if the silence becomes the endpoint,
        this decode (of exactly the audio the final would use) is the final, and end-of-speech →
        final costs max(end_silence, decode) instead of their sum."""
        if self.transcriber.final_busy and self._detector is None:  # it would queue; the final
            return  # will decode anyway (with a detector the verdict needs it: queue it)
        audio = np.concatenate(self._frames)
        self._guess_wanted = wanted = _Wanted()
        self._speculative = self._tasks.spawn(self._guess(self._utterance, audio, wanted), "speculative")
        if self._detector is not None:
            self._judging = self._tasks.spawn(self._judge(self._speculative, audio), "end-of-turn")

    async def _guess(self, utterance: int, audio: npt.NDArray[np.float32], wanted: _Wanted) -> Transcript:
        # Every utterance's end-of-turn guess (which is also its final) decodes in the quick window:
        # the full 30 s window cost 2.2 CPU-s for Whisper base, so end of speech -> final took a
        # median 2.3 s on two cores; the transcriber falls back to the full window for a clip
        # too long for it, a decode that loops or one that finds no words.
        try:
            transcript = await self.transcriber.transcribe_async(
                audio, urgent=True, quick=True, wanted=lambda: wanted.value)
        except DecodeSkipped:
            raise asyncio.CancelledError from None  # abandoned (speech resumed before it started)
        judged = utterance == self._quick_utterance
        news = transcript.text != self._last_partial if transcript.text else judged
        if utterance == self._utterance and news:
            # Not (yet) the final: the user went on speaking, or the silence is still short. It is
            # a decode of the utterance so far all the same, so it goes out as a partial (an empty
            # one for a judged utterance: its barge-in judge learns the decode found no words).
            self._last_partial = transcript.text
            self._emit(PartialTranscript(utterance, transcript.text))
        return transcript

    def _finalize(self, reason: str, heard: bool = True) -> None:
        audio = np.concatenate(self._frames) if heard and self._frames else np.zeros(0, dtype=np.float32)
        if self._speaking and self._silent >= self._judge_after:
            # keep judge_after_ms of the trailing silence, not all of it: exactly the speculative audio
            keep = len(audio) - (self._silent - self._judge_after) * FRAME_SAMPLES
            audio = audio[:keep]
        guess, self._speculative, self._guess_wanted = self._speculative, None, None  # the final's: wanted
        silence_s = self._silent * FRAME_S if reason in ("end_of_turn", "end_of_speech") else 0.0
        ending = _Ending(reason, silence_s, self._verdict)
        log.debug("utterance %d ended: %s after %.2fs of silence", self._utterance, reason, silence_s)
        utterance = self._utterance
        self._utterance += 1
        self._frames, self._voiced, self._speaking, self._silent = [], 0, False, 0
        self._verdict = None
        self._pre_roll.clear()
        previous = self._final_chain
        loop = asyncio.get_running_loop()
        self._final_chain = self._tasks.spawn(
            self._final(utterance, audio, ending, loop.time(), previous, guess), "final")

    async def _final(self, utterance: int, audio: npt.NDArray[np.float32], ending: _Ending, ended_at: float,
                     previous: asyncio.Task[None] | None, guess: asyncio.Task[Transcript] | None) -> None:
        if previous is not None and not previous.done():  # finals leave in utterance order
            with contextlib.suppress(Exception):
                await asyncio.shield(previous)
        reason = ending.reason
        if not len(audio):  # is_end without any speech: say so rather than let Whisper hallucinate
            self._emit(FinalTranscript(utterance, "", "", reason, 0.0, 0.0, 0.0))
            return
        transcript = None
        if guess is not None:
            await asyncio.wait([guess])  # never raises: a failed or abandoned guess means decoding again
            if not guess.cancelled() and guess.exception() is None:
                transcript = guess.result()
        if transcript is None:
            transcript = await self.transcriber.transcribe_async(audio, urgent=True, quick=True)
        latency = asyncio.get_running_loop().time() - ended_at
        self._emit(FinalTranscript(utterance, transcript.text, transcript.language, reason,
                                   transcript.audio_s, transcript.decode_s, latency, ending.silence_s,
                                   ending.verdict))

    def _emit(self, event: RecognitionEvent) -> None:
        if not self._closed:
            self._events.put_nowait(event)
