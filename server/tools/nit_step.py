"""NIT in a turn: run the <nit> scripts (and <tool_call> blocks) a model writes in its reply.

The reply streams on as usual, but a `<nit> … </nit>` block is held back
from the visible (and spoken) text: scripts are for the mesh, not the user.
When the model has finished, each script runs with `call_tool` = the tool
port (built-ins and node capabilities, the requesting device first); a
failing script gets one corrected attempt from the model (error reflection).
A `<tool_call>{"name": …, "arguments": {…}}</tool_call>` block (the format
Qwen2.5's chat template teaches the model) is one direct call. The calls are
reported as tool_call/tool_result, and a short line saying what was done (or
what failed) ends the reply.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from server.dialog.tool_port import Report, ToolCallRecord, TurnRequest
from server.llm.base import ChatMessage, LlmProvider, LlmRequest
from server.nit import Runtime, run_with_reflection
from server.nit.runtime import CallRecord, Pending
from server.text.language import language_of
from server.tools.broadcasts import Announcer
from server.tools.port import GridToolPort

# (opening, closing, kind). <tool_call>{"name": …, "arguments": {…}}</tool_call> is Qwen2.5's call format;
# small models often fence a script as Markdown (```nit … ```), which counts too.
log = logging.getLogger(__name__)
TAGS = (("<nit>", "</nit>", "nit"), ("```nit", "```", "nit"), ("<tool_call>", "</tool_call>", "tool_call"))
REFLECTION_PROMPT = "You write NIT tool scripts. Answer only with one corrected <nit>…</nit> block."


@dataclass(frozen=True)
class Block:
    kind: str  # "nit" or "tool_call"
    body: str


class NitScanner:
    """Splits streamed text into what the user sees and the tool blocks (tags may span deltas)."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self._pending = ""  # text that may be the start of a tag
        self._kind: str | None = None  # inside a block of this kind
        self._close = ""  # … which ends with this
        self._body: list[str] = []

    @property
    def scripts(self) -> list[str]:
        return [b.body for b in self.blocks if b.kind == "nit"]

    def feed(self, piece: str) -> str:
        text = self._pending + piece
        self._pending = ""
        visible: list[str] = []
        while text:
            if self._kind is None:
                found = [(at, opening, closing, kind) for opening, closing, kind in TAGS
                         if (at := text.find(opening)) >= 0]
                if not found:
                    keep = max(_partial_tag(text, opening) for opening, _, _ in TAGS)
                    visible.append(text[: len(text) - keep])
                    self._pending = text[len(text) - keep:]
                    break
                at, opening, self._close, self._kind = min(found)
                visible.append(text[:at])
                self._body = []
                text = text[at + len(opening):]
            else:
                close = self._close
                at = text.find(close)
                if at < 0:
                    keep = _partial_tag(text, close)
                    self._body.append(text[: len(text) - keep])
                    self._pending = text[len(text) - keep:]
                    break
                self._body.append(text[:at])
                self.blocks.append(Block(self._kind, "".join(self._body).strip("\n")))
                self._kind = None
                text = text[at + len(close):]
        return "".join(visible)

    def flush(self) -> str:
        """The end of the reply: an unclosed block still counts."""
        rest, self._pending = self._pending, ""
        if self._kind is not None:
            self.blocks.append(Block(self._kind, ("".join(self._body) + rest).strip("\n")))
            self._kind = None
            return ""
        return rest


def _partial_tag(text: str, tag: str) -> int:
    """How many trailing characters of `text` could begin `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class NitFollower:
    """Wraps the model's stream of a turn (`DialogToolPort.follow`), calling tools through `port`.

    `async` calls a script leaves unawaited keep running after the turn (the
    companion does not wait for a slow tool); each result is spoken on the
    requesting device's live session when it arrives, through `announcer`.
    """

    def __init__(self, port: GridToolPort, llm: LlmProvider | None, *, call_timeout_s: float = 30.0,
                 max_calls: int = 32, announcer: Announcer | None = None,
                 announce_retries: int = 20) -> None:
        self.port = port
        self.llm = llm
        self.call_timeout_s = call_timeout_s
        self.max_calls = max_calls
        self.announcer = announcer
        self.announce_retries = announce_retries
        self.late: set[Runtime] = set()  # runtimes whose detached calls are still running
        self.announced: collections.deque[str] = collections.deque(maxlen=64)  # what late results said, newest last

    async def close(self) -> None:
        """Cancel detached calls still running (at core stop)."""
        for runtime in list(self.late):
            await runtime.close()
        self.late.clear()

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
        for block in scanner.blocks:
            if block.kind == "nit":
                yield await self.run(request, block.body, report, language)
            else:
                yield await self.call(request, block.body, report, language)

    async def call(self, request: TurnRequest, body: str, report: Report, language: str) -> str:
        """A model-driven call in Qwen's format: {"name": …, "arguments": {…}}."""
        try:
            spec = json.loads(body)
            name, args = spec["name"], spec.get("arguments") or {}
            if isinstance(args, str):
                args = json.loads(args)
            if not isinstance(name, str) or not isinstance(args, dict):
                raise TypeError("name must be a string and arguments an object")
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            reason = f"unreadable tool call: {exc}"
            report([ToolCallRecord("call-bad", "", body[:500], error=reason)])
            return f"\n（{reason}）" if language == "zh" else f"\n({reason})"
        record, _ = await self.port.record(name, args, request.device_id)
        report([record])
        if record.error:
            zh = f"\n（{name} 没有成功：{record.error}）"
            return zh if language == "zh" else f"\n({name} failed: {record.error})"
        return f"\n（已执行：{name}）" if language == "zh" else f"\n(done: {name})"

    async def run(self, request: TurnRequest, script: str, report: Report, language: str) -> str:
        """Run one script (with one reflection); report its calls; the line that ends the reply."""

        async def call_tool(name: str, args: dict[str, Any]) -> Any:
            return await self.port.call(name, args, request.device_id)

        waiting: list[Pending] = []

        async def late(pending: Pending) -> None:
            await self._late_result(pending, request, language)
            waiting.remove(pending)
            if not waiting:
                self.late.discard(runtime)

        runtime = Runtime(call_tool, call_timeout_s=self.call_timeout_s, max_calls=self.max_calls,
                          on_late_result=late)
        try:
            outcome = await run_with_reflection(script, runtime, self._ask, detach=True)
        except BaseException:
            await runtime.close()
            raise
        waiting += outcome.result.pending if outcome.ok and outcome.result is not None else []
        if waiting:
            self.late.add(runtime)  # kept until its last detached call has reported
        else:
            await runtime.close()
        calls = [c for attempt in outcome.attempts for c in attempt.calls]
        report([_record(i, c) for i, c in enumerate(calls)])
        done = [c.tool for c in calls if c.ok]
        if outcome.ok:
            zh = language == "zh"
            parts = []
            if done:
                parts.append(("已执行：" if zh else "done: ") + ("、" if zh else ", ").join(done))
            if waiting:
                names = ("、" if zh else ", ").join(p.tool for p in waiting)
                parts.append(f"正在处理：{names}，完成后告诉你" if zh else f"working on: {names}; I'll tell you when "
                                                                          "it is done")
            if not parts:
                return ""
            return f"\n（{'；'.join(parts)}）" if zh else f"\n({'; '.join(parts)})"
        error = outcome.error
        reason = error.message if error is not None else "unknown error"
        return f"\n（脚本没有成功：{reason}）" if language == "zh" else f"\n(the script failed: {reason})"

    async def _late_result(self, pending: Pending, request: TurnRequest, language: str) -> None:
        """Speak a detached call's result on the requesting device (retrying while a turn is running there)."""
        error = pending.error()
        if pending.task.cancelled():
            return
        if error is not None:
            reason = str(getattr(error, "message", "") or error)
            text = f"{pending.tool} 没有成功：{reason}" if language == "zh" else f"{pending.tool} failed: {reason}"
        else:
            shown = _short(pending.result())
            text = f"{pending.tool} 完成了：{shown}" if language == "zh" else f"{pending.tool} finished: {shown}"
        self.announced.append(text)
        devices = [request.device_id] if request.device_id else []
        for _ in range(self.announce_retries):
            dialog = self.announcer
            if dialog is not None and await dialog.announce(text, devices):
                return
            await asyncio.sleep(0.5)  # a turn is running there (announcements never cut one), or no session yet
        log.info("late NIT result not spoken (no free session on %s): %s", devices or "any device", text)

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


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
