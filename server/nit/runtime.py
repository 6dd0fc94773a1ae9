"""Runs a parsed NIT script against tools reached through an injected `call_tool`.

`call_tool(name, args) -> result` is async and supplied by the caller (the hub's
capability router in the core; a dict of functions in tests). The runtime
never knows where a tool lives.

Async semantics:
- `$h = async tool(...)` starts the call as a task and binds $h to a handle at once.
- Using $h as an argument (or in a list) waits for it; `await $h` waits explicitly;
  `await [$a, $b]` waits for all and gives the list of results (a join).
- A failed async call raises where its result is first needed, reported at that
  place and naming the line of the `async` call.
- At the end of the script, unawaited async calls are joined (their failures
  reported) unless `detach=True`: then `run` returns at once with the handles in
  `RunResult.pending` and results arrive later through `on_late_result` —
  the companion keeps talking while a slow tool works. `Runtime.close()` cancels
  whatever is still running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from server.aio import TaskOwner, cancel_and_wait
from server.nit.syntax import Await, Call, Expr, ListExpr, Literal_, NitError, Script, Var, parse

log = logging.getLogger(__name__)

CallTool = Callable[[str, dict[str, Any]], Awaitable[Any]]
LateResult = Callable[["Pending"], Awaitable[None] | None]


class NitRuntimeError(NitError):
    kind = "runtime error"

    def __init__(self, message: str, line: int, column: int, source: str, tool: str | None = None) -> None:
        super().__init__(message, line, column, source)
        self.tool = tool
        self.calls: list[CallRecord] = []  # the calls of the failed run, filled in by Runtime.run


@dataclass(eq=False)
class Pending:
    """The handle of an `async` call."""

    tool: str
    args: dict[str, Any]
    line: int
    column: int
    variable: str | None
    task: asyncio.Task[Any]
    awaited: bool = False

    @property
    def done(self) -> bool:
        return self.task.done()

    def result(self) -> Any:
        return self.task.result()

    def error(self) -> BaseException | None:
        return None if not self.task.done() or self.task.cancelled() else self.task.exception()


@dataclass(frozen=True)
class CallRecord:
    """One tool call of a run, for traces and for the reflection text."""

    tool: str
    args: dict[str, Any]
    line: int
    ok: bool
    result: Any = None
    error: str | None = None
    is_async: bool = False


@dataclass
class RunResult:
    variables: dict[str, Any]
    calls: list[CallRecord]
    last_value: Any = None
    pending: list[Pending] = field(default_factory=list)


class Runtime:
    """Executes scripts; one instance per conversation turn (owns its background calls)."""

    def __init__(self, call_tool: CallTool, *, call_timeout_s: float = 30.0, max_calls: int = 32,
                 on_late_result: LateResult | None = None) -> None:
        self.call_tool = call_tool
        self.call_timeout_s = call_timeout_s
        self.max_calls = max_calls
        self.on_late_result = on_late_result
        self._owner = TaskOwner("nit")
        self._detached: set[Pending] = set()

    async def run_source(self, source: str, *, detach: bool = False) -> RunResult:
        return await self.run(parse(source), detach=detach)

    async def run(self, script: Script, *, detach: bool = False) -> RunResult:
        """Run `script`; NitRuntimeError on the first failure (background calls of a failed run are cancelled)."""
        run = _Run(self, script)
        try:
            for statement in script.statements:
                value = await run.eval(statement.expr)
                if statement.target is not None:
                    run.variables[statement.target] = value
                run.last_value = value
            if detach:
                for p in run.unawaited():
                    self._detached.add(p)
                    self._owner.spawn(self._deliver_late(p), f"late:{p.tool}")
            else:
                for p in run.unawaited():
                    await run.resolve(p, p.line, p.column)
        except BaseException as exc:
            for p in run.pendings:
                await cancel_and_wait(p.task)
            if isinstance(exc, NitRuntimeError):
                exc.calls = list(run.calls)
            raise
        variables = {k: (v.result() if isinstance(v, Pending) and v.done and v.error() is None else v)
                     for k, v in run.variables.items()}
        return RunResult(variables, run.calls, run.last_value, run.unawaited() if detach else [])

    async def _deliver_late(self, pending: Pending) -> None:
        try:
            await asyncio.wait({pending.task})
        except asyncio.CancelledError:
            await cancel_and_wait(pending.task)
            raise
        finally:
            self._detached.discard(pending)
        if self.on_late_result is not None:
            maybe = self.on_late_result(pending)
            if maybe is not None:
                await maybe

    async def close(self) -> None:
        """Cancel background (detached) calls still running."""
        await self._owner.close()
        for pending in list(self._detached):
            await cancel_and_wait(pending.task)
        self._detached.clear()


class _Run:
    def __init__(self, runtime: Runtime, script: Script) -> None:
        self.rt = runtime
        self.script = script
        self.variables: dict[str, Any] = {}
        self.calls: list[CallRecord] = []
        self.pendings: list[Pending] = []
        self.last_value: Any = None
        self.started = 0

    def fail(self, message: str, node: Expr | Pending, tool: str | None = None) -> NitRuntimeError:
        return NitRuntimeError(message, node.line, node.column, self.script.source, tool)

    def unawaited(self) -> list[Pending]:
        return [p for p in self.pendings if not p.awaited]

    async def eval(self, expr: Expr) -> Any:
        if isinstance(expr, Literal_):
            return expr.value
        if isinstance(expr, Var):
            if expr.name not in self.variables:
                known = ", ".join(f"${k}" for k in self.variables) or "none yet"
                raise self.fail(f"${expr.name} is not defined (defined so far: {known})", expr)
            return self.variables[expr.name]
        if isinstance(expr, ListExpr):
            return [await self.eval(item) for item in expr.items]
        if isinstance(expr, Await):
            value = await self.eval(expr.target)
            return await self.settle(value, expr)
        return await self.call(expr)

    async def eval_settled(self, expr: Expr) -> Any:
        """Evaluate an argument, waiting for async handles (errors point at the handle's own place)."""
        if isinstance(expr, ListExpr):
            return [await self.eval_settled(item) for item in expr.items]
        return await self.settle(await self.eval(expr), expr)

    async def settle(self, value: Any, where: Expr) -> Any:
        """Replace async handles (also inside lists) by their results, waiting as needed."""
        if isinstance(value, Pending):
            return await self.resolve(value, where.line, where.column)
        if isinstance(value, list):
            return [await self.settle(v, where) for v in value]
        return value

    async def resolve(self, pending: Pending, line: int, column: int) -> Any:
        pending.awaited = True
        try:
            return await asyncio.shield(pending.task)
        except asyncio.CancelledError:
            if pending.task.cancelled():
                raise NitRuntimeError(f"the async call to {pending.tool!r} (line {pending.line}) was cancelled",
                                      line, column, self.script.source, pending.tool) from None
            raise
        except NitRuntimeError as exc:
            raise NitRuntimeError(f"{exc.message} (async call started at line {pending.line})", line, column,
                                  self.script.source, pending.tool) from exc

    async def call(self, call: Call) -> Any:
        self.started += 1
        if self.started > self.rt.max_calls:
            raise self.fail(f"too many tool calls (the limit is {self.rt.max_calls} per script)", call, call.tool)
        args: dict[str, Any] = {}
        for arg in call.args:
            args[arg.name] = await self.eval_settled(arg.value)
        if call.is_async:
            task = asyncio.get_running_loop().create_task(self.invoke(call, args, is_async=True),
                                                          name=f"nit:{call.tool}")
            pending = Pending(call.tool, args, call.line, call.column, None, task)
            self.pendings.append(pending)
            return pending
        return await self.invoke(call, args, is_async=False)

    async def invoke(self, call: Call, args: dict[str, Any], is_async: bool) -> Any:
        try:
            async with asyncio.timeout(self.rt.call_timeout_s):
                result = await self.rt.call_tool(call.tool, args)
        except TimeoutError:
            self.calls.append(CallRecord(call.tool, args, call.line, False, error="timed out", is_async=is_async))
            raise self.fail(f"{call.tool} did not answer within {self.rt.call_timeout_s:g} s", call,
                            call.tool) from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            self.calls.append(CallRecord(call.tool, args, call.line, False, error=reason, is_async=is_async))
            raise self.fail(f"{call.tool} failed: {reason}", call, call.tool) from exc
        self.calls.append(CallRecord(call.tool, args, call.line, True, result=result, is_async=is_async))
        return result
