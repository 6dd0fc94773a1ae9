"""Error reflection: a failed script's error goes back to the LLM for one corrected attempt.

`reflection_text` is what the model reads: the error with its caret, the
calls that already succeeded (with results, so the fix need not repeat side
effects), and the rules of the language in two lines. `run_with_reflection`
runs a reply's script, and on failure asks `ask_llm` exactly once for a
corrected <nit> block; a second failure is final.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from server.nit.runtime import CallRecord, NitRuntimeError, RunResult, Runtime
from server.nit.syntax import NitError, extract_scripts, parse

AskLlm = Callable[[str], Awaitable[str]]

_RULES = ("NIT rules: one statement per line; `$var = tool(key=value, ...)`; arguments are always named; "
          "strings in quotes; lists in [...]; `$h = async tool(...)` then `await $h`.")


def _short(value: Any, limit: int = 300) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reflection_text(script: str, error: NitError, calls: list[CallRecord] | None = None) -> str:
    """The feedback for the LLM after a failed script."""
    parts = ["Your <nit> script failed.", error.render()]
    done = [c for c in (calls or []) if c.ok]
    if done:
        parts.append("These calls already succeeded; do not repeat them, use their results as values:")
        parts += [f"  line {c.line}: {c.tool}({_short(c.args, 120)}) -> {_short(c.result)}" for c in done]
    parts.append(_RULES)
    parts.append("Reply with one corrected <nit>…</nit> block (only the steps still needed).")
    return "\n".join(parts)


@dataclass
class Attempt:
    script: str
    result: RunResult | None = None
    error: NitError | None = None
    calls: list[CallRecord] = field(default_factory=list)


@dataclass
class ReflectionOutcome:
    attempts: list[Attempt]
    feedback: str | None = None  # what was sent to the LLM, if a retry happened

    @property
    def ok(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].error is None

    @property
    def result(self) -> RunResult | None:
        return self.attempts[-1].result if self.attempts else None

    @property
    def error(self) -> NitError | None:
        return self.attempts[-1].error if self.attempts else None


async def _attempt(runtime: Runtime, script: str, detach: bool) -> Attempt:
    attempt = Attempt(script)
    try:
        result = await runtime.run(parse(script), detach=detach)
        attempt.result, attempt.calls = result, result.calls
    except NitRuntimeError as exc:
        attempt.error, attempt.calls = exc, exc.calls
    except NitError as exc:
        attempt.error = exc
    return attempt


async def run_with_reflection(script: str, runtime: Runtime, ask_llm: AskLlm, *,
                              detach: bool = False) -> ReflectionOutcome:
    """Run `script`; on a parse/runtime error ask the LLM once for a fix and run that. Never more than two runs."""
    first = await _attempt(runtime, script, detach)
    if first.error is None:
        return ReflectionOutcome([first])
    feedback = reflection_text(script, first.error, first.calls)
    reply = await ask_llm(feedback)
    blocks = extract_scripts(reply)
    second = await _attempt(runtime, blocks[0] if blocks else reply.strip(), detach)
    return ReflectionOutcome([first, second], feedback)
