"""A deterministic provider for tests and benchmarks: a fixed answer, token by token.

Tokens are words, Han characters and punctuation (`server/llm/tokens.py`), each after `delay_ms` (also
the first), so a benchmark can subtract the provider's own delay exactly. The
first token is timed precisely: asyncio's sleeps overshoot by up to a
millisecond (the selector rounds its timeout up), which would otherwise be
counted as mesh overhead; the last stretch is spent yielding to the loop.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator

from server.llm.base import LlmRequest
from server.llm.tokens import tokenize

DEFAULT_TEXT = (
    "Hello! I am Pero, your desktop companion, and I am happy to help you today. "
    "我们先看看今天的安排吧，下午三点你有一个会议。"
    "After that, you wanted to stretch and drink some water, so I will remind you. "
    "如果你想聊天，我随时都在这里。"
    "Tell me what you would like to do next, and we will plan it together."
)
CALLS_KEPT = 256


class ScriptedProvider:
    name = "scripted"

    def __init__(self, text: str = DEFAULT_TEXT, delay_ms: float = 20.0) -> None:
        self.tokens = tokenize(text)
        self.delay_s = delay_ms / 1000.0
        # What it was asked, newest last (tests inspect the context). Bounded: soaks and benchmarks
        # serve this model for hours, and every request holds a whole prompt.
        self.calls: collections.deque[LlmRequest] = collections.deque(maxlen=CALLS_KEPT)

    async def stream(self, request: LlmRequest) -> AsyncIterator[str]:
        self.calls.append(request)
        for index, token in enumerate(self.tokens[: max(1, request.max_new_tokens)]):
            if index == 0:
                await _sleep_precisely(self.delay_s)
            elif self.delay_s:
                await asyncio.sleep(self.delay_s)
            yield token

    async def aclose(self) -> None:
        return None


async def _sleep_precisely(seconds: float, spin_s: float = 0.0015) -> None:
    """Sleep `seconds` to within tens of microseconds, still letting other tasks run."""
    deadline = time.perf_counter() + seconds
    if seconds > spin_s:
        await asyncio.sleep(seconds - spin_s)
    while time.perf_counter() < deadline:  # noqa: ASYNC110 - a deliberate sub-millisecond spin
        await asyncio.sleep(0)
