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

`--quantize none int8` compares weight formats in one run (server/llm/quantize.py; `int8+head`
also makes lm_head int8, an experiment with no flag): `speed` is measured in interleaved rounds
(none, int8, none, int8, …) so a busy machine slows both alike, with one `speed_ratio` line per
mode against the first; `answers` gives the greedy answers of fixed zh/en prompts side by side,
with the tokens each mode shares with the first mode's answer.

Usage: .venv/bin/python benchmarks/local_llm.py [--model qwen|smollm2] [--data-dir ~/.peromesh] [--tokens 32]
           [--quantize none int8 [int8+head]] [--rounds 2] [--skip-turns]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

from server.llm.base import ChatMessage, LlmRequest
from server.llm.factory import warm_up
from server.llm.local import LocalTransformersProvider
from server.llm.model_store import prepare_model
from server.llm.prompt import build_messages
from server.llm.quantize import QUANTIZE_MODES, int8_linears

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
PROMPTS = [
    "What is the capital of France?",
    "你好！你叫什么名字？",
    "Give me one tip for sleeping better.",
    "北京和上海哪个城市更大？",
    "How many days are there in a leap year?",
    "我有点累，能给我讲个简短的笑话吗？",
    "Translate 'good morning' into Chinese.",
    "用一句话解释什么是机器学习。",
    "Write a Python one-liner that reverses a string.",
    "明天要下雨，我出门应该带什么？",
]


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


def loaded(folder: Path, mode: str) -> LocalTransformersProvider:
    """A greedy provider with weights as `mode` says (`int8+head`: lm_head int8 too)."""
    if mode != "int8+head":
        return LocalTransformersProvider(folder, temperature=0.0, quantize=mode)
    provider = LocalTransformersProvider(folder, temperature=0.0)
    int8_linears(provider.model, keep_fp32=frozenset())
    return provider


def interleaved_speed(model: str, providers: dict[str, LocalTransformersProvider], rounds: int) -> None:
    """`speed` of each mode in turn, `rounds` times; the median of each figure, and ratios to the first mode."""
    samples: dict[str, list[dict[str, object]]] = {mode: [] for mode in providers}
    for _ in range(rounds):
        for mode, provider in providers.items():
            samples[mode].append(speed(provider))
    medians = {mode: {key: statistics.median(float(str(s[key])) for s in rows) for key in rows[0]}
               for mode, rows in samples.items()}
    first = next(iter(medians))
    for mode, figures in medians.items():
        print(json.dumps({"model": model, "metric": "speed", "quantize": mode, "rounds": rounds, **figures,
                          "load_average": load()}), flush=True)
    for mode, figures in list(medians.items())[1:]:  # > 1: faster (tokens/s up, ms/token down)
        ratios = {key: round(value / medians[first][key] if "per_s" in key else medians[first][key] / value, 2)
                  for key, value in figures.items()}
        print(json.dumps({"model": model, "metric": "speed_ratio", "quantize": mode, "against": first, **ratios,
                          "load_average": load()}), flush=True)


async def answers(model: str, providers: dict[str, LocalTransformersProvider], tokens: int) -> None:
    """Each prompt's greedy answer (the real system prompt, no session) from every mode, side by side."""
    first = next(iter(providers))
    for prompt in PROMPTS:
        request = LlmRequest(build_messages([], prompt), "", tokens)
        texts, ids = {}, {}
        for mode, provider in providers.items():
            texts[mode] = "".join([d async for d in provider.stream(request)])
            ids[mode] = provider.tokenizer(texts[mode]).input_ids
        shared = {mode: _common_prefix(ids[first], ids[mode]) for mode in providers}
        print(json.dumps({"model": model, "metric": "answers", "prompt": prompt, "answers": texts,
                          "tokens": {m: len(v) for m, v in ids.items()}, "prefix_shared_with_" + first: shared},
                         ensure_ascii=False), flush=True)


def _common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen", choices=["qwen", "smollm2"])
    parser.add_argument("--data-dir", default=str(Path.home() / ".peromesh"))
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--quantize", nargs="+", default=["none"], choices=[*QUANTIZE_MODES, "int8+head"])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved speed rounds per mode")
    parser.add_argument("--answer-tokens", type=int, default=48, help="longest side-by-side answer")
    parser.add_argument("--skip-baseline", action="store_true", help="only the cached conversation")
    parser.add_argument("--skip-turns", action="store_true", help="no conversation: speed and answers only")
    args = parser.parse_args()
    folder = prepare_model(args.model, Path(args.data_dir).expanduser())
    providers = {mode: loaded(folder, mode) for mode in dict.fromkeys(args.quantize)}
    interleaved_speed(args.model, providers, args.rounds)
    asyncio.run(compare(providers, args))


async def compare(providers: dict[str, LocalTransformersProvider], args: argparse.Namespace) -> None:
    for provider in providers.values():
        await warm_up(provider)
    if len(providers) > 1:
        await answers(args.model, providers, args.answer_tokens)
    if args.skip_turns:
        return
    modes = (("kv_cache", "bench"),) if args.skip_baseline else (("kv_cache", "bench"), ("no_cache_baseline", ""))
    for quantize, provider in providers.items():
        for label, session in modes:
            rows = await conversation(provider, session, args.tokens)
            for row in rows:
                print(json.dumps({"model": args.model, "metric": "turn", "quantize": quantize, "mode": label, **row,
                                  "load_average": load()}, ensure_ascii=False), flush=True)
            print(json.dumps({"model": args.model, "metric": "prefill_total", "quantize": quantize, "mode": label,
                              "prefill_tokens": sum(int(str(r["prefill_tokens"])) for r in rows)}), flush=True)


if __name__ == "__main__":
    main()
