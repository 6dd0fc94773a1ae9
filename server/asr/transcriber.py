"""One loaded Whisper model, decoding whole buffers off the event loop.

Whisper does not stream: every update re-decodes the utterance so far. Decodes
run one at a time on a dedicated thread (CTranslate2 releases the GIL, so the
event loop stays responsive; serialising keeps two cores from thrashing when
several sessions talk at once). A model is loaded once per process and shared.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from peromesh.server.asr.models import DEFAULT_MODEL, MODELS, prepare_model

log = logging.getLogger(__name__)
SAMPLE_RATE = 16000
# Whisper otherwise often writes Mandarin in traditional characters; a
# simplified-Chinese prompt steers it (language detection does not see it).
ZH_PROMPT = "以下是普通话的句子。"


@dataclass(frozen=True)
class Transcript:
    """The text of one decode and what it cost."""

    text: str
    language: str
    audio_s: float
    decode_s: float


class WhisperTranscriber:
    """Blocking `transcribe` plus an awaitable `transcribe_async` on the model's own thread."""

    def __init__(self, model_dir: Path, *, name: str, multilingual: bool, cpu_threads: int = 0,
                 language: str | None = None) -> None:
        from faster_whisper import WhisperModel  # heavy import, only when a model is wanted

        self.name = name
        self.multilingual = multilingual
        self.language = language if multilingual else "en"
        threads = cpu_threads or min(4, os.cpu_count() or 1)
        started = time.perf_counter()
        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
        self.load_s = time.perf_counter() - started
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"whisper-{name}")
        self._pending = 0
        log.info("whisper %s loaded in %.2fs", name, self.load_s)

    def transcribe(self, audio: npt.NDArray[np.float32]) -> Transcript:
        """Decode mono float32 audio at 16 kHz (greedy; no timestamps; no VAD: the caller cut it)."""
        started = time.perf_counter()
        segments, info = self._model.transcribe(
            audio, language=self.language, beam_size=1, vad_filter=False, without_timestamps=True,
            condition_on_previous_text=False, initial_prompt=ZH_PROMPT if self.multilingual else None,
        )
        text = "".join(segment.text for segment in segments).strip()
        return Transcript(text, info.language, len(audio) / SAMPLE_RATE, time.perf_counter() - started)

    async def transcribe_async(self, audio: npt.NDArray[np.float32]) -> Transcript:
        """`transcribe` on the model's thread. Cancelling the awaiting task abandons the result;
        the decode in progress still finishes on its thread (CTranslate2 cannot be interrupted)."""
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self.transcribe, audio)
        finally:
            self._pending -= 1

    @property
    def busy(self) -> bool:
        """True while a decode is queued or running (partial updates skip rather than queue)."""
        return self._pending > 0


_loaded: dict[tuple[str, str | None], WhisperTranscriber] = {}
_load_lock = threading.Lock()


def load_transcriber(name: str = DEFAULT_MODEL, models_dir: Path | None = None,
                     language: str | None = None) -> WhisperTranscriber:
    """The process-wide transcriber for model `name` (loaded on first use; blocking, ~1 s)."""
    if name not in MODELS:
        raise ValueError(f"unknown whisper model {name!r}; known: {sorted(MODELS)}")
    key = (name, language)
    with _load_lock:
        if key not in _loaded:
            info = MODELS[name]
            _loaded[key] = WhisperTranscriber(prepare_model(name, models_dir), name=name,
                                              multilingual=info.multilingual, language=language)
        return _loaded[key]
