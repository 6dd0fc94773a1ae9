"""Speech input of one Converse stream: `user_audio` messages → recognizer → dialog callbacks.

The core builds one `SpeechLoader` from its settings (`SpeechSettings`) and
calls it once before it reports SERVING: the Whisper model, Silero VAD and the
end-of-turn detector load and run once, in a thread (ready means warm; no
blocking load ever runs on the event loop). Every later call returns the same
loaded models. The dialog session owns one `SpeechInput`; it creates the
recognizer on the first audio and runs one listener task that hands every
recognition event, in order, to the session's `on_event` callback:

- SpeechStarted → barge in when a turn is running (the VAD already demanded
  `min_speech_ms` of voice, so a cough does not cut the assistant off);
- PartialTranscript → `transcription{is_final=false}`;
- FinalTranscript → `transcription{is_final=true}`, and non-empty text starts a turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from server.aio import TaskOwner
from server.asr import vad
from server.asr.models import MODELS
from server.asr.streaming import EndpointConfig, RecognitionEvent, StreamingRecognizer
from server.asr.transcriber import WhisperTranscriber, load_transcriber
from server.asr.turn_detector import BUNDLED, TurnDetector, load_turn_detector

log = logging.getLogger(__name__)
EventHandler = Callable[[RecognitionEvent], Awaitable[None]]


@dataclass(frozen=True)
class SpeechSettings:
    """How speech input is configured (`--asr-*`, `--turn-*`); each default is defined here once."""

    asr_model: str = "base"  # "base" | "tiny.en" | "none"
    asr_language: str | None = None  # None: detected per utterance
    turn_model: str = BUNDLED  # "smart-turn-v3.2" (bundled in pipecat-ai) | a path to an ONNX file | "none"
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)


@dataclass(frozen=True)
class SpeechModels:
    """Everything a stream's recognizer needs, loaded once per process and shared."""

    transcriber: WhisperTranscriber
    turn_detector: TurnDetector | None
    endpoint: EndpointConfig

    def recognizer(self, config: EndpointConfig | None = None) -> StreamingRecognizer:
        return StreamingRecognizer(self.transcriber, config or self.endpoint, self.turn_detector)


SpeechLoader = Callable[[], Awaitable[SpeechModels]]


def speech_loader(settings: SpeechSettings, models_dir: Path | None = None) -> SpeechLoader | None:
    """A loader for the configured models, or None for `--asr-model none` (speech input off).

    The first call loads and exercises Whisper, the VAD and the turn detector in a thread (seconds;
    the core awaits it before it reports SERVING); later calls return the loaded models at once."""
    if settings.asr_model == "none":
        return None
    if settings.asr_model not in MODELS:
        raise ValueError(f"unknown ASR model {settings.asr_model!r}; known: {[*MODELS, 'none']}")
    loaded: list[SpeechModels] = []

    async def load() -> SpeechModels:
        if not loaded:
            loaded.append(await asyncio.to_thread(_load_and_warm, settings, models_dir))
        return loaded[0]

    return load


def _load_and_warm(settings: SpeechSettings, models_dir: Path | None) -> SpeechModels:
    """Blocking: load each model and run it once, so the first utterance pays no first-run cost."""
    started = time.perf_counter()
    log.info("speech: loading whisper %s, silero VAD and the end-of-turn model …", settings.asr_model)
    transcriber = load_transcriber(settings.asr_model, models_dir, settings.asr_language)
    transcriber.warm()
    vad.warm()
    detector = load_turn_detector(settings.turn_model)
    log.info("speech: ready in %.1fs (end of turn: %s)", time.perf_counter() - started,
             "model + transcript" if detector.available else "silence only")
    return SpeechModels(transcriber, detector, settings.endpoint)


async def warm_up(load: SpeechLoader) -> None:
    """Load and exercise the speech models now (before serving). A failure is logged, not raised:
    the core still serves text, and each stream's first audio then gets one UNAVAILABLE error."""
    try:
        await load()
    except Exception:
        log.exception("speech input is unavailable (user_audio will be refused)")


class SpeechUnavailable(RuntimeError):
    """The speech model is missing or broken (e.g. the model packages are not installed)."""


class SpeechInput:
    def __init__(self, load: SpeechLoader, on_event: EventHandler, config: EndpointConfig | None = None) -> None:
        self._load = load
        self._on_event = on_event
        self._config = config  # None: the loader's (the configured endpointing)
        self._recognizer: StreamingRecognizer | None = None
        self._tasks = TaskOwner("speech-input")
        self._listener: asyncio.Task[None] | None = None
        self._unavailable = False

    @property
    def recognizer(self) -> StreamingRecognizer | None:
        """The stream's recognizer once audio arrived (its voice activity judges barge-ins)."""
        return self._recognizer

    async def feed(self, pcm: bytes, sample_rate_hertz: int, is_end: bool) -> None:
        """One `user_audio` message (rate 0 means 16 kHz). Raises ValueError on a bad rate, and
        SpeechUnavailable once if the model cannot load (later audio of the stream is dropped)."""
        if self._unavailable:
            return
        if self._recognizer is None:
            try:
                models = await self._load()
            except Exception as exc:
                self._unavailable = True
                log.exception("speech model failed to load")
                raise SpeechUnavailable(f"the speech model could not be loaded: {exc}") from exc
            self._recognizer = models.recognizer(self._config)
            self._listener = self._tasks.spawn(self._listen(self._recognizer), "listen")
        if pcm:
            await self._recognizer.feed(pcm, sample_rate_hertz or 16000)
        if is_end:
            await self._recognizer.end()

    async def _listen(self, recognizer: StreamingRecognizer) -> None:
        async for event in recognizer.events():
            try:
                await self._on_event(event)
            except Exception:
                log.exception("speech event handler failed on %s", type(event).__name__)

    async def finish(self) -> None:
        """No more audio (the client half-closed): hand every utterance already ended (`is_end`,
        silence) to `on_event`, then stop listening. Without it such an utterance would be dropped."""
        if self._recognizer is None:
            return
        await self._recognizer.drain()
        await self._recognizer.close()  # events() ends after the finals already queued
        if self._listener is not None:
            await self._listener

    async def close(self) -> None:
        if self._recognizer is not None:
            await self._recognizer.close()
        await self._tasks.close()
