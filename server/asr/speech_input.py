"""Speech input of one Converse stream: `user_audio` messages → recognizer → dialog callbacks.

The dialog session owns one `SpeechInput`. It creates the recognizer on the
first audio (loading the shared Whisper model off the event loop if this is
the process's first speech) and runs one listener task that hands every
recognition event, in order, to the session's `on_event` callback:

- SpeechStarted → barge in when a turn is running (the VAD already demanded
  `min_speech_ms` of voice, so a cough does not cut the assistant off);
- PartialTranscript → `transcription{is_final=false}`;
- FinalTranscript → `transcription{is_final=true}`, and non-empty text starts a turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from server.aio import TaskOwner
from server.asr.models import MODELS
from server.asr.pcm import DEFAULT_RATE_HZ, check_pcm16
from server.asr.streaming import EndpointConfig, RecognitionEvent, StreamingRecognizer
from server.asr.transcriber import WhisperTranscriber, load_transcriber

log = logging.getLogger(__name__)
TranscriberLoader = Callable[[], Awaitable[WhisperTranscriber]]
EventHandler = Callable[[RecognitionEvent], Awaitable[None]]


def transcriber_loader(model: str, models_dir: Path | None = None,
                       language: str | None = None) -> TranscriberLoader | None:
    """A loader for `model` ("base", "tiny.en"), or None for "none" (speech input off).

    The model loads on the first call (≈1 s, in a thread) and is shared by every stream."""
    if model == "none":
        return None
    if model not in MODELS:
        raise ValueError(f"unknown ASR model {model!r}; known: {[*MODELS, 'none']}")

    async def load() -> WhisperTranscriber:
        return await asyncio.to_thread(load_transcriber, model, models_dir, language)

    return load


class SpeechUnavailable(RuntimeError):
    """The speech model is missing or broken (e.g. the model packages are not installed)."""


class SpeechInput:
    def __init__(self, load: TranscriberLoader, on_event: EventHandler, config: EndpointConfig | None = None) -> None:
        self._load = load
        self._on_event = on_event
        self._config = config
        self._recognizer: StreamingRecognizer | None = None
        self._tasks = TaskOwner("speech-input")
        self._unavailable = False

    async def feed(self, pcm: bytes, sample_rate_hertz: int, is_end: bool) -> None:
        """One `user_audio` message (rate 0 means 16 kHz). Raises ValueError on a bad rate, and
        SpeechUnavailable once if the model cannot load (later audio of the stream is dropped)."""
        check_pcm16(pcm, sample_rate_hertz or DEFAULT_RATE_HZ)  # the check the bridge applies too (odd bytes, rate)
        if self._unavailable:
            return
        if self._recognizer is None:
            try:
                transcriber = await self._load()
            except Exception as exc:
                self._unavailable = True
                log.exception("speech model failed to load")
                raise SpeechUnavailable(f"the speech model could not be loaded: {exc}") from exc
            self._recognizer = StreamingRecognizer(transcriber, self._config)
            self._tasks.spawn(self._listen(self._recognizer), "listen")
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

    async def close(self) -> None:
        if self._recognizer is not None:
            await self._recognizer.close()
        await self._tasks.close()
