"""Choose and build the LLM provider from settings (--llm, --model, ...)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from server.llm.base import LlmProvider, LlmRequest
from server.llm.openai_compat import OpenAICompatProvider
from server.llm.prompt import build_messages
from server.llm.scripted import ScriptedProvider
from server.llm.settings import LlmSettings
from server.warmup import loading, progress

log = logging.getLogger(__name__)
WARM_TOKENS = 2
WARM_TIMEOUT_S = 120.0  # a remote server loading a big model on its first request takes a while


async def build_provider(settings: LlmSettings, data_dir: Path) -> LlmProvider:
    """The configured provider, loaded and exercised once (see `warm_up`)."""
    provider: LlmProvider
    if settings.llm == "scripted":
        provider = ScriptedProvider(settings.scripted_text, settings.scripted_delay_ms)
    elif settings.llm == "openai":
        provider = OpenAICompatProvider(settings.openai_base_url, settings.openai_model, settings.openai_api_key)
    else:
        provider = await asyncio.to_thread(_load_local, settings, data_dir)
    try:
        await warm_up(provider, required=settings.llm == "local")
    except BaseException:
        await provider.aclose()
        raise
    return provider


async def warm_up(provider: LlmProvider, required: bool = True, timeout_s: float = WARM_TIMEOUT_S) -> None:
    """Generate a couple of tokens through the provider's own streaming path, before the core serves.

    The first generation pays for what loading does not (the chat template's first render, the
    first forward pass's allocations; an OpenAI-compatible server such as ollama loads its model
    on the first request), so the first real turn does not. It asks with the turns' own system
    prompt (server/llm/prompt.py), whose KV the local model keeps for new sessions to start from
    (server/llm/kv_cache.py): turn 1 encodes only its own message. The local model generates in
    its worker thread, never on the event loop. `required`: a failure raises (the local model is
    broken); otherwise it is logged (a remote endpoint may come up later) and the core serves.
    """
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            for hello in ("Hi!", "你好！"):  # each language's fixed prefix (its worked example) kept
                async for _ in provider.stream(LlmRequest(build_messages([], hello), max_new_tokens=WARM_TOKENS)):
                    pass
    except Exception as exc:
        if required:
            raise
        log.warning("the %s chat model did not answer its warm-up (%s): the first turn may be slow",
                    provider.name, exc)
        return
    progress(f"chat model ({provider.name}) warm: first generation in {time.perf_counter() - started:.1f}s")


def _load_local(settings: LlmSettings, data_dir: Path) -> LlmProvider:
    from server.llm.local import LocalTransformersProvider
    from server.llm.model_store import prepare_model

    folder = Path(settings.model_dir) if settings.model_dir else prepare_model(settings.model, data_dir)
    suffix = "" if settings.quantize == "none" else f" ({settings.quantize})"
    with loading(f"chat model {folder.name}{suffix}"):
        return LocalTransformersProvider(folder, settings.threads, settings.temperature,
                                         quantize=settings.quantize)
