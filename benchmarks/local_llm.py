"""The real local model: time to first delta and tokens/s on turn 1 and turn 10 of one conversation.

Two runs of the same 10-turn conversation (greedy decoding, so both see the
same text): with the per-session KV cache (what the dialog core does) and
without it (every turn re-encodes the whole history: the baseline). Goal:
first delta ≤ 1 s on turn 10 too.

Usage: .venv/bin/python benchmarks/local_llm.py [--model qwen|smollm2] [--data-dir ~/.peromesh] [--tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from server.llm.base import ChatMessage, LlmRequest
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


async def conversation(provider: LocalTransformersProvider, session: str, tokens: int) -> list[dict[str, float]]:
    history: list[ChatMessage] = []
    rows = []
    for turn, question in enumerate(QUESTIONS, 1):
        request = LlmRequest(build_messages(history, question), session, tokens)
        started = time.perf_counter()
        first = 0.0
        pieces = []
        async for piece in provider.stream(request):
            first = first or time.perf_counter() - started
            pieces.append(piece)
        total = time.perf_counter() - started
        new = provider.last_new_tokens
        rows.append({"turn": turn, "first_delta_s": round(first, 3), "prefill_tokens": provider.last_prefill_tokens,
                     "new_tokens": new, "tokens_per_s": round(new / max(1e-6, total - first), 2)})
        history += [ChatMessage("user", question), ChatMessage("assistant", "".join(pieces))]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen", choices=["qwen", "smollm2"])
    parser.add_argument("--data-dir", default=str(Path.home() / ".peromesh"))
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    provider = LocalTransformersProvider(prepare_model(args.model, Path(args.data_dir).expanduser()), temperature=0.0)
    asyncio.run(compare(provider, args.model, args.tokens))


async def compare(provider: LocalTransformersProvider, model: str, tokens: int) -> None:
    for label, session in (("kv_cache", "bench"), ("no_cache_baseline", "")):
        rows = await conversation(provider, session, tokens)
        for row in (rows[0], rows[-1]):
            print(json.dumps({"model": model, "mode": label, **row}), flush=True)


if __name__ == "__main__":
    main()
