"""Which chat model the core talks to, and how (`--llm`, `--model`, …): one typed default each."""

from __future__ import annotations

from dataclasses import dataclass

from server.config.flags import flag
from server.llm.quantize import QUANTIZE_MODES
from server.llm.scripted import DEFAULT_TEXT


@dataclass(frozen=True)
class LlmSettings:
    llm: str = flag("local", "llm", "chat model provider (default: local transformers model)",
                    choices=("local", "openai", "scripted"))
    model: str = flag("qwen", "model", "local model: qwen (Qwen2.5-Coder-0.5B-Instruct, zh+en) or smollm2 "
                      "(English, light)", choices=("qwen", "smollm2"))
    model_dir: str | None = flag(None, "model-dir", "load this transformers folder instead of --model")
    quantize: str = flag("none", "llm-quantize", "local model weights: none (fp32) or int8 (dynamic "
                         "quantization of its Linear layers: faster on a CPU)", choices=QUANTIZE_MODES)
    threads: int = flag(2, "llm-threads", "CPU threads for the local model")
    temperature: float = flag(0.7, "llm-temperature", "sampling temperature of the local model")
    max_new_tokens: int = flag(200, "max-new-tokens", "longest reply, in tokens")
    openai_base_url: str = flag("http://127.0.0.1:11434/v1", "openai-base-url",
                                "OpenAI-compatible endpoint (ollama, llama.cpp, vLLM, cloud)")
    openai_model: str = flag("qwen2.5:7b-instruct", "openai-model", "model name at that endpoint")
    openai_api_key: str | None = flag(None, "openai-api-key", "API key for that endpoint")
    scripted_text: str = flag(DEFAULT_TEXT, "scripted-text", "what the scripted (test) model answers")
    scripted_delay_ms: float = flag(20.0, "scripted-delay-ms", "the scripted model's delay per token")
