"""NIT runtime: variable passing, async/await joins, errors with positions, and one-shot reflection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.nit import NitRuntimeError, NitSyntaxError, Pending, Runtime, parse, run_with_reflection


class Tools:
    """Real async tools; `call` is the injected call_tool."""

    def __init__(self) -> None:
        self.log: list[tuple[str, dict[str, Any]]] = []
        self.gate = asyncio.Event()
        self.release = asyncio.Event()
        self.finished: list[Any] = []

    async def call(self, name: str, args: dict[str, Any]) -> Any:
        self.log.append((name, args))
        if name == "weather.get":
            return {"city": args["city"], "temp": 21}
        if name == "echo":
            return args
        if name == "fail":
            raise ValueError(args.get("reason", "boom"))
        if name == "sleep":
            await asyncio.sleep(args["s"])
            return args.get("value")
        if name == "wait_gate":  # finishes only if `open_gate` runs concurrently
            await asyncio.wait_for(self.gate.wait(), 5)
            return "through"
        if name == "open_gate":
            self.gate.set()
            return "opened"
        if name == "held":
            await self.release.wait()
            self.finished.append(args.get("value"))
            return args.get("value")
        raise LookupError(f"no tool named {name!r} is online")


async def test_values_flow_between_calls() -> None:
    tools = Tools()
    result = await Runtime(tools.call).run_source(
        '$w = weather.get(city="Oslo")\n$e = echo(report=$w, list=[$w, 3], flag=false)\necho(x="done")')
    assert result.variables["w"] == {"city": "Oslo", "temp": 21}
    assert result.variables["e"] == {"report": {"city": "Oslo", "temp": 21}, "list": [{"city": "Oslo", "temp": 21}, 3],
                                     "flag": False}
    assert result.last_value == {"x": "done"}
    assert [(c.tool, c.line, c.ok) for c in result.calls] == [("weather.get", 1, True), ("echo", 2, True),
                                                             ("echo", 3, True)]


async def test_async_calls_run_concurrently_and_join() -> None:
    tools = Tools()
    # wait_gate can only finish if open_gate runs while it waits: proves concurrency without timing.
    result = await Runtime(tools.call).run_source(
        "$a = async wait_gate()\n$b = async open_gate()\n$both = await [$a, $b]")
    assert result.variables["both"] == ["through", "opened"]
    assert result.variables["a"] == "through"


async def test_using_a_handle_waits_implicitly_and_unawaited_calls_are_joined() -> None:
    tools = Tools()
    result = await Runtime(tools.call).run_source(
        "$h = async sleep(s=0.01, value=7)\n$e = echo(n=$h)\nasync sleep(s=0.01, value=8)")
    assert result.variables["e"] == {"n": 7}
    assert result.pending == [] and [c.result for c in result.calls if c.tool == "sleep"] == [7, 8]


async def test_sync_call_blocks_the_script() -> None:
    tools = Tools()
    with pytest.raises(NitRuntimeError, match=r"did not answer within 0\.2 s") as err:
        await Runtime(tools.call, call_timeout_s=0.2).run_source("wait_gate()\nopen_gate()")
    assert (err.value.line, err.value.column, err.value.tool) == (1, 1, "wait_gate")
    assert [name for name, _ in tools.log] == ["wait_gate"]  # open_gate never ran


@pytest.mark.parametrize(("source", "line", "column", "fragment"), [
    ("$a = echo(x=1)\n$b = echo(y=$c)", 2, 13, "$c is not defined (defined so far: $a)"),
    ("echo(x=1)\n  $r = fail(reason=\"disk full\")", 2, 8, "fail failed: disk full"),
    ("$r = teleport(to=\"mars\")", 1, 6, "teleport failed: no tool named 'teleport' is online"),
    ("$h = async fail(reason=\"late\")\necho(x=1)\n$r = await $h", 3, 6,
     "fail failed: late (async call started at line 1)"),
    ("$h = async fail(reason=\"late\")\n$e = echo(v=[1, $h])", 2, 17, "(async call started at line 1)"),
    ("$h = async fail(reason=\"never awaited\")", 1, 6, "fail failed: never awaited"),
])
async def test_runtime_errors_point_at_the_failing_place(source: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(NitRuntimeError) as err:
        await Runtime(Tools().call).run_source(source)
    e = err.value
    assert (e.line, e.column) == (line, column), e.render()
    assert fragment in e.message
    assert e.render().splitlines()[2] == "    " + " " * (column - 1) + "^"


async def test_call_limit_stops_runaway_scripts() -> None:
    with pytest.raises(NitRuntimeError, match="too many tool calls") as err:
        await Runtime(Tools().call, max_calls=3).run_source("echo()\necho()\necho()\necho()")
    assert err.value.line == 4


async def test_failure_cancels_background_calls() -> None:
    tools = Tools()
    with pytest.raises(NitRuntimeError):
        await Runtime(tools.call).run_source("$h = async held(value=1)\nsleep(s=0.01)\nfail()")
    assert sorted(name for name, _ in tools.log) == ["fail", "held", "sleep"]  # held had started  # held had started
    tools.release.set()  # would let `held` finish if it were still running
    await asyncio.sleep(0.05)
    assert tools.finished == []


async def test_detached_results_arrive_later_and_close_cancels() -> None:
    tools = Tools()
    late: list[Pending] = []
    arrived = asyncio.Event()

    def on_late(p: Pending) -> None:
        late.append(p)
        arrived.set()

    runtime = Runtime(tools.call, on_late_result=on_late)
    result = await runtime.run(parse("$h = async held(value=42)\n$x = echo(now=1)"), detach=True)
    assert result.variables["x"] == {"now": 1} and [p.tool for p in result.pending] == ["held"]
    assert not result.pending[0].done and late == []  # the script returned while the call still runs
    tools.release.set()
    await asyncio.wait_for(arrived.wait(), 5)
    assert late[0].result() == 42 and late[0].error() is None
    # a second detached call is cancelled by close()
    tools.release.clear()
    result = await runtime.run(parse("async held(value=1)"), detach=True)
    await runtime.close()
    assert result.pending[0].task.cancelled()
    tools.release.set()
    await asyncio.sleep(0.05)
    assert tools.finished == [42]


async def test_reflection_fixes_a_syntax_error_with_one_retry() -> None:
    tools = Tools()
    asked: list[str] = []

    async def llm(feedback: str) -> str:
        asked.append(feedback)
        return 'Sorry! <nit>$w = weather.get(city="Rome")</nit>'

    outcome = await run_with_reflection('$w = weather.get(city=Rome")', Runtime(tools.call), llm)
    assert outcome.ok and len(outcome.attempts) == 2 and len(asked) == 1
    assert outcome.result is not None and outcome.result.variables["w"]["city"] == "Rome"
    assert isinstance(outcome.attempts[0].error, NitSyntaxError)
    feedback = asked[0]
    assert "syntax error at line 1, column 27" in feedback and "\n    " + " " * 26 + "^" in feedback
    assert "<nit>" in feedback and "named" in feedback


async def test_reflection_reports_succeeded_calls_and_stops_after_the_second_failure() -> None:
    tools = Tools()
    asked: list[str] = []

    async def llm(feedback: str) -> str:
        asked.append(feedback)
        return "<nit>$w2 = fail(reason=\"still broken\")</nit>"

    script = '$w = weather.get(city="Oslo")\n$r = teleport(to="moon")'
    outcome = await run_with_reflection(script, Runtime(tools.call), llm)
    assert not outcome.ok and len(outcome.attempts) == 2 and len(asked) == 1
    assert outcome.error is not None and "still broken" in outcome.error.message
    feedback = asked[0]
    assert "runtime error at line 2, column 6: teleport failed" in feedback
    assert 'line 1: weather.get({"city": "Oslo"}) -> {"city": "Oslo", "temp": 21}' in feedback


async def test_reflection_is_not_used_when_the_script_works() -> None:
    async def llm(feedback: str) -> str:
        raise AssertionError("must not be asked")

    outcome = await run_with_reflection("echo(a=1)", Runtime(Tools().call), llm)
    assert outcome.ok and len(outcome.attempts) == 1 and outcome.feedback is None
