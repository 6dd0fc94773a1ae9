"""Choose and build the LLM provider from settings (--llm, --model, ...)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from server.llm.base import LlmProvider
from server.llm.openai_compat import OpenAICompatProvider
from server.llm.scripted import DEFAULT_TEXT, ScriptedProvider

log = logging.getLogger(__name__)


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
    if settings.llm == "scripted":
        return ScriptedProvider(settings.scripted_text, settings.scripted_delay_ms)
    if settings.llm == "openai":
        return OpenAICompatProvider(settings.openai_base_url, settings.openai_model, settings.openai_api_key)
    return await asyncio.to_thread(_load_local, settings, data_dir)


def _load_local(settings: argparse.Namespace, data_dir: Path) -> LlmProvider:
    from server.llm.local import LocalTransformersProvider
    from server.llm.model_store import prepare_model

    folder = Path(settings.model_dir) if settings.model_dir else prepare_model(settings.model, data_dir)
    print(f"peromesh: loading chat model from {folder} …", flush=True)
    provider = LocalTransformersProvider(folder, settings.llm_threads, settings.llm_temperature)
    print("peromesh: chat model loaded", flush=True)
    return provider
