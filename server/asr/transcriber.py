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
from collections.abc import Callable
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
# The companion speaks Mandarin and English: detection picks between those two only (a short clip
# otherwise comes back as Korean or Vietnamese, in words that mean nothing to the dialog).
LANGUAGES = ("zh", "en")
# A quick decode (`quick=True`) encodes a 15 s window instead of 30 s: the encoder is most of a
# decode's cost (measured for base: 0.65 vs 1.9 CPU-s; a whole decode 0.7 vs 2.2), and a clip
# this short fits in it. A 10 s window is cheaper still but reads "mm hmm" as "M M F M". The
# decoder may loop on a shortened window ("Stop Stop Stop …"): a decode that reaches
# QUICK_TOKENS_PER_S is taken as such a loop and redone on the full window; so is one that finds
# no words (measured: a short "停" is empty in the quick window, words in the full one).
# The window also shrinks with the clip: a clip of 1.5 s or more is encoded in (its length + 5 s),
# at least 8 s (measured on the 20 spoken questions of benchmarks/_questions.py, 2-3 s each: the
# same text as the 15 s window for all 20, decode p50 289 -> 158 ms zh, 274 -> 136 ms en). A
# shorter clip (a backchannel) keeps the whole quick window, where "mm hmm" is read right.
QUICK_FRAMES = 1500
QUICK_MIN_FRAMES = 800
QUICK_SHRINK_FROM_S = 1.5
QUICK_MARGIN_S = 5.0
QUICK_MAX_AUDIO_S = 12.0
QUICK_TOKENS_PER_S = 12


def quick_window_frames(audio_s: float) -> int:
    """Mel frames of the quick window for a clip of `audio_s` seconds."""
    if audio_s < QUICK_SHRINK_FROM_S:
        return QUICK_FRAMES
    return min(QUICK_FRAMES, max(QUICK_MIN_FRAMES, round((audio_s + QUICK_MARGIN_S) * 100)))


class DecodeSkipped(Exception):
    """A queued decode found, when its turn came, that its result was no longer wanted."""


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

    def transcribe(self, audio: npt.NDArray[np.float32], quick: bool = False) -> Transcript:
        """Decode mono float32 audio at 16 kHz (≤ 30 s; greedy; no timestamps; the caller cut it).

        One encoder pass: WhisperModel.transcribe would encode twice for a multilingual model
        (once to detect the language, once to decode), and the encoder is most of the cost.
        `quick`: a clip of at most QUICK_MAX_AUDIO_S is encoded in the shorter window (every
        end-of-turn guess and final, and a judged barge-in's partials); a looping or empty decode
        falls back to the full one."""
        started = time.perf_counter()
        if quick and len(audio) <= QUICK_MAX_AUDIO_S * SAMPLE_RATE:
            cap = 8 + int(QUICK_TOKENS_PER_S * len(audio) / SAMPLE_RATE)
            decoded = self._decode(audio, quick_window_frames(len(audio) / SAMPLE_RATE), cap)
            if decoded is not None and decoded[0]:  # no words: the full window is the reference
                return Transcript(*decoded, len(audio) / SAMPLE_RATE, time.perf_counter() - started)
        text, language = self._decode(audio, N_FRAMES, None) or ("", "")
        return Transcript(text, language, len(audio) / SAMPLE_RATE, time.perf_counter() - started)

    def _decode(self, audio: npt.NDArray[np.float32], frames: int, cap: int | None) -> tuple[str, str] | None:
        """(text, language) of `audio` encoded in a window of `frames`; None when the decode
        reached `cap` tokens (a loop on a short window)."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        model = self._model
        features = pad_or_trim(model.feature_extractor(audio)[:, :-1][:, :frames], frames)  # as transcribe()
        encoded = model.encode(features)
        language = self.language or self._detect(encoded)
        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe",
                              language=language)
        previous = tokenizer.encode(" " + ZH_PROMPT) if language == "zh" else []
        prompt = model.get_prompt(tokenizer, previous, without_timestamps=True)
        limit = cap + len(prompt) if cap else model.max_length
        result = model.model.generate(
            encoded, [prompt], beam_size=1, max_length=limit, return_scores=True,
            return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        )[0]
        tokens = result.sequences_ids[0]
        if cap is not None and len(tokens) >= cap - 1:
            return None
        avg_logprob = result.scores[0] / (len(tokens) + 1)
        # Whisper's own silence rule: probably no speech and not confidently decoded.
        silent = result.no_speech_prob > NO_SPEECH_PROB and avg_logprob < -1.0
        text = "" if silent else tokenizer.decode(tokens).strip()
        if not any(ch.isalnum() for ch in text):
            text = ""  # "." or "…" alone: nothing was said
        return text, language

    def _detect(self, encoded: Any) -> str:
        """The more probable of LANGUAGES for this encoding."""
        probabilities = dict(self._model.model.detect_language(encoded)[0])
        return max(LANGUAGES, key=lambda code: float(probabilities.get(f"<|{code}|>", 0.0)))

    async def transcribe_async(self, audio: npt.NDArray[np.float32], urgent: bool = False,
                               quick: bool = False, wanted: Callable[[], bool] | None = None) -> Transcript:
        """`transcribe` off the event loop, in one of two lanes, each decoding one utterance at a
        time: `urgent` for finals (and guesses at them), the other for partial updates, so a final
        never queues behind a partial. Cancelling the awaiting task abandons the result; the decode
        in progress still finishes on its thread (CTranslate2 cannot be interrupted). `wanted` is
        asked (on the lane's thread) when the decode's turn comes: False skips it (DecodeSkipped)."""
        def job() -> Transcript:
            if wanted is not None and not wanted():
                raise DecodeSkipped()
            return self.transcribe(audio, quick=quick)

        self._pending[urgent] += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._lanes[urgent], job)
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
