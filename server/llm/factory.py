"""Choose and build the LLM provider from settings (--llm, --model, ...)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path

from server.llm.base import ChatMessage, LlmProvider, LlmRequest
from server.llm.openai_compat import OpenAICompatProvider
from server.llm.scripted import DEFAULT_TEXT, ScriptedProvider
from server.warmup import loading, progress

log = logging.getLogger(__name__)
WARM_TOKENS = 2
WARM_TIMEOUT_S = 120.0  # a remote server loading a big model on its first request takes a while


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--llm", default="local", choices=["local", "openai", "scripted"],
                       help="chat model provider (default: local transformers model)")
    group.add_argument("--model", default="qwen", choices=["qwen", "smollm2"],
                       help="local model: qwen (Qwen2.5-Coder-0.5B-Instruct, zh+en) or smollm2 (English, light)")
    group.add_argument("--model-dir", default=None, help="load this transformers folder instead of --model")
    group.add_argument("--llm-threads", type=int, default=2, help="CPU threads for the local model")
    group.add_argument("--llm-temperature", type=float, default=0.7)
    group.add_argument("--max-new-tokens", type=int, default=200)
    group.add_argument("--openai-base-url", default="http://127.0.0.1:11434/v1",
                       help="OpenAI-compatible endpoint (ollama, llama.cpp, vLLM, cloud)")
    group.add_argument("--openai-model", default="qwen2.5:7b-instruct")
    group.add_argument("--openai-api-key", default=None)
    group.add_argument("--scripted-text", default=DEFAULT_TEXT)
    group.add_argument("--scripted-delay-ms", type=float, default=20.0)


async def build_provider(settings: argparse.Namespace, data_dir: Path) -> LlmProvider:
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
    on the first request), so the first real turn does not. The local model generates in its
    worker thread, never on the event loop. `required`: a failure raises (the local model is
    broken); otherwise it is logged (a remote endpoint may come up later) and the core serves.
    """
    started = time.perf_counter()
    request = LlmRequest([ChatMessage("system", "You are a helpful companion."), ChatMessage("user", "Hi!")],
                         max_new_tokens=WARM_TOKENS)
    try:
        async with asyncio.timeout(timeout_s):
            async for _ in provider.stream(request):
                pass
    except Exception as exc:
        if required:
            raise
        log.warning("the %s chat model did not answer its warm-up (%s): the first turn may be slow",
                    provider.name, exc)
        return
    progress(f"chat model ({provider.name}) warm: first generation in {time.perf_counter() - started:.1f}s")


def _load_local(settings: argparse.Namespace, data_dir: Path) -> LlmProvider:
    from server.llm.local import LocalTransformersProvider
    from server.llm.model_store import prepare_model

    folder = Path(settings.model_dir) if settings.model_dir else prepare_model(settings.model, data_dir)
    with loading(f"chat model {folder.name}"):
        return LocalTransformersProvider(folder, settings.llm_threads, settings.llm_temperature)
