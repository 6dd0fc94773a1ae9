"""A local transformers chat model, streamed token by token from a worker thread.

Why a thread: `generate()` blocks, so it runs off the event loop; a custom
streamer hands finalized text to the loop with `call_soon_threadsafe`, and a
stopping criterion checks a stop flag before every next token, so an
interrupt stops generation within one token.

Why a per-session KV cache: re-encoding the whole history every turn makes the
first token slower each turn. The session's cache (and the token ids it
covers) is kept; a new turn's prompt shares a prefix with it, the cache is
cropped to that common prefix, and only the new tail is encoded.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peromesh.server.llm.base import LlmRequest

log = logging.getLogger(__name__)
_DONE = object()


@dataclass
class _SessionCache:
    token_ids: list[int]
    cache: Any  # transformers DynamicCache


class LocalTransformersProvider:
    """Streams from a causal LM folder (fp32, converted by model_store)."""

    name = "local"

    def __init__(self, model_dir: Path, threads: int = 2, temperature: float = 0.7,
                 max_cached_sessions: int = 4) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads)
        self.model_dir = model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        self.model.eval()
        self.temperature = temperature
        self._lock = asyncio.Lock()  # one generation at a time: the CPU is the bottleneck
        self._caches: OrderedDict[str, _SessionCache] = OrderedDict()
        self._max_cached = max_cached_sessions
        self.last_prefill_tokens = 0  # tokens encoded for the last prompt (cache effectiveness)

    async def stream(self, request: LlmRequest) -> AsyncIterator[str]:
        async with self._lock:
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[object] = asyncio.Queue()
            stop = threading.Event()
            worker = loop.run_in_executor(None, self._generate, request, queue, loop, stop)
            try:
                while (item := await queue.get()) is not _DONE:
                    if isinstance(item, BaseException):
                        raise item
                    assert isinstance(item, str)
                    yield item
            finally:
                stop.set()
                await asyncio.shield(worker)  # the cache must be consistent before the next turn

    def _generate(self, request: LlmRequest, queue: asyncio.Queue[object],
                  loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        import torch

        def emit(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        try:
            input_ids = self._render(request)
            cache = self._reusable_cache(request.session_id, input_ids[0].tolist())
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    past_key_values=cache,
                    max_new_tokens=request.max_new_tokens,
                    do_sample=self.temperature > 0,
                    temperature=self.temperature or None,
                    top_p=0.9 if self.temperature > 0 else None,
                    repetition_penalty=1.05,
                    streamer=_LoopStreamer(self.tokenizer, emit),
                    stopping_criteria=_stop_criteria(stop),
                    pad_token_id=self.tokenizer.eos_token_id,
                )
            self._remember(request.session_id, output[0].tolist(), cache)
            emit(_DONE)
        except BaseException as exc:  # surfaced on the event loop
            emit(exc)

    def _render(self, request: LlmRequest) -> Any:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                     return_tensors="pt", return_dict=True)
        return encoded["input_ids"]

    def _reusable_cache(self, session_id: str, ids: list[int]) -> Any:
        from transformers import DynamicCache

        entry = self._caches.pop(session_id, None) if session_id else None
        if entry is None:
            self.last_prefill_tokens = len(ids)
            return DynamicCache(config=self.model.config)
        common = 0
        for a, b in zip(entry.token_ids, ids, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(ids) - 1, entry.cache.get_seq_length())
        if common <= 0:
            self.last_prefill_tokens = len(ids)
            return DynamicCache(config=self.model.config)
        entry.cache.crop(common)
        self.last_prefill_tokens = len(ids) - common
        return entry.cache

    def _remember(self, session_id: str, ids: list[int], cache: Any) -> None:
        if not session_id:
            return
        length = cache.get_seq_length()
        self._caches[session_id] = _SessionCache(ids[:length], cache)
        while len(self._caches) > self._max_cached:
            self._caches.popitem(last=False)

    async def aclose(self) -> None:
        self._caches.clear()


def _stop_criteria(stop: threading.Event) -> Any:
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _StopFlag(StoppingCriteria):  # type: ignore[misc]
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
            return stop.is_set()

    return StoppingCriteriaList([_StopFlag()])


def _LoopStreamer(tokenizer: Any, emit: Any) -> Any:
    """transformers' TextStreamer (word/CJK-aware incremental decoding) feeding the loop."""
    from transformers import TextStreamer

    class LoopStreamer(TextStreamer):  # type: ignore[misc]
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                emit(text)

    return LoopStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
