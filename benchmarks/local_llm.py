"""The real local model: where a turn's first-token time goes, in deterministic counts and per-token costs.

Three parts, one JSON line each:

- `speed`: prefill tokens/s at a few prompt lengths and decode ms/token (wall and process CPU ms,
  which counts both torch threads), measured on the model directly;
- `turn`: every turn of one 10-turn zh/en conversation (greedy, so reruns see the same text)
  through the provider with the per-session KV cache (what the dialog core does): tokens encoded
  before the first token (`prefill_tokens`), time to first delta, tokens generated, tokens/s.
  Each turn's note carries recalled memories as the memory server gives them in a session: one
  fact not in the history and the user's own earlier messages (which the prompt leaves out).
  Turn 1 runs in a fresh session after a warm-up (the server's), so it starts from the shared
  system-prompt KV;
- `no_cache_baseline`: the same turns with no session (every turn re-encodes the whole prompt).

Deterministic figures (prefill_tokens, new_tokens) do not depend on the machine's load; the
times do, so each line carries the load average.

Usage: .venv/bin/python benchmarks/local_llm.py [--model qwen|smollm2] [--data-dir ~/.peromesh] [--tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from server.llm.base import ChatMessage, LlmRequest
from server.llm.factory import warm_up
from server.llm.local import LocalTransformersProvider
from server.llm.model_store import prepare_model
from server.llm.prompt import build_messages

QUESTIONS = [
    "Hi! I'm Lin. I just moved to Shanghai for a new job.",
    "我每天早上七点起床，你觉得我应该几点睡觉？",
    "What is a quick breakfast I can make in five minutes?",
    "我下午三点有个会议，会议前想放松一下，有什么建议？",
    "Can you suggest a short stretching routine for the office?",
    "我周末想去杭州玩一天，怎么安排比较好？",
    "What should I pack for a one-day trip?",
    "晚上想学一点编程，Python 从哪里开始比较好？",
    "Remind me what city I moved to, and why.",
    "最后，用一句话总结我们今天聊了什么。",
]
FACT = "[2026-11-20] my sister lives in Lyon"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def recalled(turn: int) -> list[str]:
    """What recall gives a turn of this session: a fact, and up to three of the user's earlier messages."""
    return [FACT, *(f"[2026-11-21] {q}" for q in QUESTIONS[max(0, turn - 3):turn])]


async def conversation(provider: LocalTransformersProvider, session: str, tokens: int) -> list[dict[str, object]]:
    history: list[ChatMessage] = []
    rows: list[dict[str, object]] = []
    for turn, question in enumerate(QUESTIONS):
        request = LlmRequest(build_messages(history, question, recalled(turn)), session, tokens)
        started = time.perf_counter()
        first = 0.0
        pieces = []
        async for piece in provider.stream(request):
            first = first or time.perf_counter() - started
            pieces.append(piece)
        total = time.perf_counter() - started
        new = provider.last_new_tokens
        rows.append({"turn": turn + 1, "prefill_tokens": provider.last_prefill_tokens, "new_tokens": new,
                     "first_delta_s": round(first, 3), "tokens_per_s": round(new / max(1e-6, total - first), 2),
                     "first_words": "".join(pieces)[:40]})
        history += [ChatMessage("user", question), ChatMessage("assistant", "".join(pieces))]
    return rows


def speed(provider: LocalTransformersProvider) -> dict[str, object]:
    """Prefill tokens/s at 32, 128 and 512 tokens and decode ms/token over 32 steps, wall and CPU."""
    import torch
    from transformers import DynamicCache

    model, out = provider.model, dict[str, object]()
    with torch.inference_mode():
        for length in (32, 128, 512):
            ids = torch.randint(100, 20000, (1, length))
            model(input_ids=ids[:, :8])  # allocations
            wall, cpu = time.perf_counter(), time.process_time()
            model(input_ids=ids)
            out[f"prefill_{length}_tokens_per_s"] = round(length / (time.perf_counter() - wall), 1)
            out[f"prefill_{length}_cpu_ms_per_token"] = round((time.process_time() - cpu) * 1000 / length, 2)
        cache = DynamicCache(config=model.config)
        model(input_ids=torch.randint(100, 20000, (1, 256)), past_key_values=cache)
        token = torch.tensor([[1000]])
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(32):
            model(input_ids=token, past_key_values=cache)
        out["decode_ms_per_token_at_256"] = round((time.perf_counter() - wall) * 1000 / 32, 1)
        out["decode_cpu_ms_per_token_at_256"] = round((time.process_time() - cpu) * 1000 / 32, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen", choices=["qwen", "smollm2"])
    parser.add_argument("--data-dir", default=str(Path.home() / ".peromesh"))
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--skip-baseline", action="store_true", help="only the cached conversation")
    args = parser.parse_args()
    provider = LocalTransformersProvider(prepare_model(args.model, Path(args.data_dir).expanduser()), temperature=0.0)
    print(json.dumps({"model": args.model, "metric": "speed", **speed(provider), "load_average": load()}), flush=True)
    asyncio.run(compare(provider, args.model, args.tokens, args.skip_baseline))


async def compare(provider: LocalTransformersProvider, model: str, tokens: int, skip_baseline: bool) -> None:
    await warm_up(provider)
    modes = (("kv_cache", "bench"),) if skip_baseline else (("kv_cache", "bench"), ("no_cache_baseline", ""))
    for label, session in modes:
        rows = await conversation(provider, session, tokens)
        for row in rows:
            print(json.dumps({"model": model, "metric": "turn", "mode": label, **row, "load_average": load()},
                             ensure_ascii=False), flush=True)
        print(json.dumps({"model": model, "metric": "prefill_total", "mode": label,
                          "prefill_tokens": sum(int(str(r["prefill_tokens"])) for r in rows)}), flush=True)


if __name__ == "__main__":
    main()
