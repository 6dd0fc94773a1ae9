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
    # int8 by default: on this 2-core CPU Qwen's first delta went from 0.62/0.76 s (fp32, turn 1/10,
    # English) to 0.35/0.37 s, and benchmarks/answer_eval.py passed 26/38 against fp32's 23/38 in the
    # same quiet run (identity 36/38 both).
    quantize: str = flag("int8", "llm-quantize", "local model weights: int8 (dynamic quantization of its "
                         "Linear layers: 2-3x faster on a CPU) or none (fp32)", choices=QUANTIZE_MODES)
    threads: int = flag(2, "llm-threads", "CPU threads for the local model")
    temperature: float = flag(0.7, "llm-temperature", "sampling temperature of the local model")
    max_new_tokens: int = flag(200, "max-new-tokens", "longest reply, in tokens")
    openai_base_url: str = flag("http://127.0.0.1:11434/v1", "openai-base-url",
                                "OpenAI-compatible endpoint (ollama, llama.cpp, vLLM, cloud)")
    openai_model: str = flag("qwen2.5:7b-instruct", "openai-model", "model name at that endpoint")
    openai_api_key: str | None = flag(None, "openai-api-key", "API key for that endpoint")
    scripted_text: str = flag(DEFAULT_TEXT, "scripted-text", "what the scripted (test) model answers")
    scripted_delay_ms: float = flag(20.0, "scripted-delay-ms", "the scripted model's delay per token")
