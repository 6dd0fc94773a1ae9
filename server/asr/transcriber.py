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
from typing import Any

import numpy as np
import numpy.typing as npt

from server.asr.models import DEFAULT_MODEL, MODELS, prepare_model

log = logging.getLogger(__name__)
SAMPLE_RATE = 16000
# Whisper otherwise often writes Mandarin in traditional characters; a simplified-Chinese
# prompt steers it. Given only when Mandarin was detected (it can derail English).
ZH_PROMPT = "以下是普通话的句子。"
N_FRAMES = 3000  # Whisper's 30 s window of 10 ms mel frames
NO_SPEECH_PROB = 0.6


@dataclass(frozen=True)
class Transcript:
    """The text of one decode and what it cost."""

    text: str
    language: str
    audio_s: float
    decode_s: float


class WhisperTranscriber:
    """Blocking `transcribe` plus an awaitable `transcribe_async` on the model's own threads."""

    def __init__(self, model_dir: Path, *, name: str, multilingual: bool, cpu_threads: int = 0,
                 language: str | None = None) -> None:
        from faster_whisper import WhisperModel  # heavy (CTranslate2, PyAV): only when a model loads

        self.name = name
        self.multilingual = multilingual
        self.language = language if multilingual else "en"
        threads = cpu_threads or min(4, os.cpu_count() or 1)
        started = time.perf_counter()
        # Two workers: a final never waits behind a partial (CTranslate2 cannot interrupt one).
        self._model: Any = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads,
                                        num_workers=2)
        self.load_s = time.perf_counter() - started
        self._lanes = {urgent: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"whisper-{name}-{lane}")
                       for urgent, lane in ((False, "partial"), (True, "final"))}
        self._pending = {False: 0, True: 0}
        self._warm_lock = threading.Lock()
        self._warmed = False
        log.info("whisper %s loaded in %.2fs", name, self.load_s)

    def warm(self) -> None:
        """Decode once (blocking, about one decode's time; later calls are free): the first decode
        of a fresh model pays CTranslate2's one-time allocations, which must not fall on a user."""
        with self._warm_lock:
            if not self._warmed:
                started = time.perf_counter()
                self.transcribe(np.zeros(SAMPLE_RATE, dtype=np.float32))
                self._warmed = True
                log.info("whisper %s warmed in %.2fs", self.name, time.perf_counter() - started)

    def transcribe(self, audio: npt.NDArray[np.float32]) -> Transcript:
        """Decode mono float32 audio at 16 kHz (≤ 30 s; greedy; no timestamps; the caller cut it).

        One encoder pass: WhisperModel.transcribe would encode twice for a multilingual model
        (once to detect the language, once to decode), and the encoder is most of the cost."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        started = time.perf_counter()
        model = self._model
        features = pad_or_trim(model.feature_extractor(audio)[:, :-1][:, :N_FRAMES])  # as transcribe()
        encoded = model.encode(features)
        language = self.language or model.model.detect_language(encoded)[0][0][0][2:-2]
        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe",
                              language=language)
        previous = tokenizer.encode(" " + ZH_PROMPT) if language == "zh" else []
        prompt = model.get_prompt(tokenizer, previous, without_timestamps=True)
        result = model.model.generate(
            encoded, [prompt], beam_size=1, max_length=model.max_length, return_scores=True,
            return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        )[0]
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] / (len(tokens) + 1)
        # Whisper's own silence rule: probably no speech and not confidently decoded.
        silent = result.no_speech_prob > NO_SPEECH_PROB and avg_logprob < -1.0
        text = "" if silent else tokenizer.decode(tokens).strip()
        if not any(ch.isalnum() for ch in text):
            text = ""  # "." or "…" alone: nothing was said
        return Transcript(text, language, len(audio) / SAMPLE_RATE, time.perf_counter() - started)

    async def transcribe_async(self, audio: npt.NDArray[np.float32], urgent: bool = False) -> Transcript:
        """`transcribe` off the event loop, in one of two lanes, each decoding one utterance at a
        time: `urgent` for finals (and guesses at them), the other for partial updates, so a final
        never queues behind a partial. Cancelling the awaiting task abandons the result; the decode
        in progress still finishes on its thread (CTranslate2 cannot be interrupted)."""
        self._pending[urgent] += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._lanes[urgent], self.transcribe, audio)
        finally:
            self._pending[urgent] -= 1

    @property
    def busy(self) -> bool:
        """True while any decode is queued or running (partial updates then skip rather than queue)."""
        return self._pending[False] + self._pending[True] > 0

    @property
    def final_busy(self) -> bool:
        """True while a final decode is queued or running."""
        return self._pending[True] > 0


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
