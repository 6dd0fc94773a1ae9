"""NIT in a turn: run the <nit> scripts a model writes in its reply, through the tool port.

The reply streams on as usual, but a `<nit> … </nit>` block is held back
from the visible (and spoken) text: scripts are for the mesh, not the user.
When the model has finished, each script runs with `call_tool` = the tool
port (built-ins and node capabilities, the requesting device first); a
failing script gets one corrected attempt from the model (error reflection).
The calls are reported as tool_call/tool_result, and a short line saying
what was done (or what failed) ends the reply.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from peromesh.server.dialog.tool_port import ToolCallRecord, TurnRequest
from peromesh.server.llm.base import ChatMessage, LlmProvider, LlmRequest
from peromesh.server.nit import Runtime, run_with_reflection
from peromesh.server.nit.runtime import CallRecord
from peromesh.server.tools.intents import language_of
from peromesh.server.tools.port import GridToolPort, Report

OPEN, CLOSE = "<nit>", "</nit>"
REFLECTION_PROMPT = "You write NIT tool scripts. Answer only with one corrected <nit>…</nit> block."


class NitScanner:
    """Splits streamed text into what the user sees and the <nit> scripts (tags may span deltas)."""

    def __init__(self) -> None:
        self.scripts: list[str] = []
        self._pending = ""  # text that may be the start of a tag
        self._script: list[str] | None = None  # inside a block

    def feed(self, piece: str) -> str:
        text = self._pending + piece
        self._pending = ""
        visible: list[str] = []
        while text:
            if self._script is None:
                at = text.find(OPEN)
                if at < 0:
                    keep = _partial_tag(text, OPEN)
                    visible.append(text[: len(text) - keep])
                    self._pending = text[len(text) - keep:]
                    break
                visible.append(text[:at])
                self._script = []
                text = text[at + len(OPEN):]
            else:
                at = text.find(CLOSE)
                if at < 0:
                    keep = _partial_tag(text, CLOSE)
                    self._script.append(text[: len(text) - keep])
                    self._pending = text[len(text) - keep:]
                    break
                self._script.append(text[:at])
                self.scripts.append("".join(self._script).strip("\n"))
                self._script = None
                text = text[at + len(CLOSE):]
        return "".join(visible)

    def flush(self) -> str:
        """The end of the reply: an unclosed block still counts as a script."""
        rest, self._pending = self._pending, ""
        if self._script is not None:
            self.scripts.append(("".join(self._script) + rest).strip("\n"))
            self._script = None
            return ""
        return rest


def _partial_tag(text: str, tag: str) -> int:
    """How many trailing characters of `text` could begin `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class NitFollower:
    """`GridToolPort.nit`: wraps the model's stream of a turn."""

    def __init__(self, port: GridToolPort, llm: LlmProvider | None, *, call_timeout_s: float = 30.0,
                 max_calls: int = 32) -> None:
        self.port = port
        self.llm = llm
        self.call_timeout_s = call_timeout_s
        self.max_calls = max_calls

    def __call__(self, request: TurnRequest, stream: AsyncIterator[str], report: Report) -> AsyncIterator[str]:
        return self._follow(request, stream, report)

    async def _follow(self, request: TurnRequest, stream: AsyncIterator[str], report: Report) -> AsyncIterator[str]:
        scanner = NitScanner()
        try:
            async for piece in stream:
                if visible := scanner.feed(piece):
                    yield visible
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if rest := scanner.flush():
            yield rest
        language = language_of(request.text)
        for script in scanner.scripts:
            yield await self.run(request, script, report, language)

    async def run(self, request: TurnRequest, script: str, report: Report, language: str) -> str:
        """Run one script (with one reflection); report its calls; the line that ends the reply."""

        async def call_tool(name: str, args: dict[str, Any]) -> Any:
            return await self.port.call(name, args, request.device_id)

        runtime = Runtime(call_tool, call_timeout_s=self.call_timeout_s, max_calls=self.max_calls)
        try:
            outcome = await run_with_reflection(script, runtime, self._ask)
        finally:
            await runtime.close()
        calls = [c for attempt in outcome.attempts for c in attempt.calls]
        report([_record(i, c) for i, c in enumerate(calls)])
        done = [c.tool for c in calls if c.ok]
        if outcome.ok:
            names = "、".join(done) if language == "zh" else ", ".join(done)
            if language == "zh":
                return f"\n（已执行：{names}）" if done else ""
            return f"\n(done: {names})" if done else ""
        error = outcome.error
        reason = error.message if error is not None else "unknown error"
        return f"\n（脚本没有成功：{reason}）" if language == "zh" else f"\n(the script failed: {reason})"

    async def _ask(self, feedback: str) -> str:
        if self.llm is None:
            return ""
        request = LlmRequest([ChatMessage("system", REFLECTION_PROMPT), ChatMessage("user", feedback)],
                             max_new_tokens=256)
        parts = [piece async for piece in self.llm.stream(request)]
        return "".join(parts)


def _record(index: int, call: CallRecord) -> ToolCallRecord:
    args = json.dumps(call.args, ensure_ascii=False, default=str)
    if call.ok:
        return ToolCallRecord(f"nit-{index}-{call.line}", call.tool, args,
                              json.dumps(call.result, ensure_ascii=False, default=str))
    return ToolCallRecord(f"nit-{index}-{call.line}", call.tool, args, error=call.error or "failed")


def wire(port: GridToolPort, llm: LlmProvider | None) -> Callable[..., AsyncIterator[str]]:
    """Install NIT on `port` (its `follow()` then runs scripts in model replies)."""
    follower = NitFollower(port, llm)
    port.nit = follower
    return follower
