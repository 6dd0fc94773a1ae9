"""Tool blocks in a model reply: hidden from the user, run through the port, one reflection on error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from server.dialog.tool_port import ToolCallRecord, TurnRequest
from server.llm.scripted import ScriptedProvider, tokenize
from server.storage.db import sqlite_url
from server.tasks.service import TaskService
from server.tools.nit_step import Block, NitFollower, NitScanner
from server.tools.port import GridToolPort


def scan(text: str, step: int) -> tuple[str, list[Block]]:
    scanner = NitScanner()
    shown = "".join(scanner.feed(text[i:i + step]) for i in range(0, len(text), step)) + scanner.flush()
    return shown, scanner.blocks


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_scanner_hides_blocks_whatever_the_delta_boundaries(step: int) -> None:
    text = ('Sure, a < b and <b>bold</b>.<nit>\n$x = a.b(k="<v>")\n</nit> Done '
            '<tool_call>{"name": "add_task", "arguments": {"title": "t"}}</tool_call><nit>$y = c()')
    shown, blocks = scan(text, step)
    assert shown == "Sure, a < b and <b>bold</b>. Done "
    assert blocks == [Block("nit", '$x = a.b(k="<v>")'),
                      Block("tool_call", '{"name": "add_task", "arguments": {"title": "t"}}'),
                      Block("nit", "$y = c()")]  # an unclosed block at the end still counts


@pytest.mark.parametrize("step", [1, 4, 1000])
def test_scanner_takes_markdown_fenced_nit_as_a_script(step: int) -> None:
    shown, blocks = scan('OK.\n```nit\ndesktop.notify(text="该喝水了")\n```\nDone. ```python\nx```', step)
    assert shown == "OK.\n\nDone. ```python\nx```"
    assert blocks == [Block("nit", 'desktop.notify(text="该喝水了")')]


def test_scanner_passes_text_that_only_looks_like_a_tag_start() -> None:
    assert scan("x <ni", 1) == ("x <ni", [])
    assert scan("<nitro> is fast", 3) == ("<nitro> is fast", [])


@pytest.fixture
async def tasks(tmp_path: Path) -> AsyncIterator[TaskService]:
    service = TaskService()
    await service.open(sqlite_url(tmp_path, "tasks"))
    yield service
    await service.stop()


async def follow(follower: NitFollower, reply: str, text: str = "do it") -> tuple[str, list[ToolCallRecord]]:
    reported: list[ToolCallRecord] = []

    async def stream() -> AsyncIterator[str]:
        for token in tokenize(reply):
            yield token

    pieces = [p async for p in follower(TurnRequest("s", "desk", text), stream(), reported.extend)]
    return "".join(pieces), reported


async def test_a_failing_script_gets_one_corrected_attempt_from_the_model(tasks: TaskService) -> None:
    fixer = ScriptedProvider('<nit>\n$t = add_task(title="买牛奶")\n</nit>', delay_ms=0)
    follower = NitFollower(GridToolPort(tasks=tasks), fixer)
    shown, calls = await follow(follower, '好的。<nit>\n$t = add_task(title="买牛奶"\n</nit>', text="记一下买牛奶")
    assert shown == "好的。\n（已执行：add_task）"
    [feedback] = [m.content for m in fixer.calls[0].messages if m.role == "user"]
    assert feedback.startswith("Your <nit> script failed.\nsyntax error at line 1, column") and "^" in feedback
    assert [c.name for c in calls] == ["add_task"] and not calls[0].error
    assert [t.title for t in await tasks.list_tasks()] == ["买牛奶"]


async def test_a_second_failure_is_final_and_reported(tasks: TaskService) -> None:
    fixer = ScriptedProvider('<nit>\n$t = no.such(x=1)\n</nit>', delay_ms=0)
    follower = NitFollower(GridToolPort(tasks=tasks), fixer)
    shown, calls = await follow(follower, "OK <nit>$t = add_task()</nit>")
    assert shown.startswith("OK \n(the script failed: no.such failed: no tool named 'no.such' is available now")
    assert [(c.name, bool(c.error)) for c in calls] == [("add_task", True), ("no.such", True)]
    assert calls[0].error == "missing argument: title" and await tasks.list_tasks() == []


async def test_tool_call_blocks_are_direct_calls(tasks: TaskService) -> None:
    follower = NitFollower(GridToolPort(tasks=tasks), None)
    shown, calls = await follow(follower, 'On it.<tool_call>{"name": "add_task", "arguments": '
                                          '{"title": "water plants"}}</tool_call><tool_call>{"name": 1}</tool_call>')
    assert shown == "On it.\n(done: add_task)\n(unreadable tool call: name must be a string and arguments an object)"
    assert calls[0].name == "add_task" and json.loads(calls[0].result_json)["title"] == "water plants"
    assert calls[1].error.startswith("unreadable tool call")


class Spoken:
    """A dialog stand-in that records announcements (the real one is exercised in test_dialog_tools)."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, tuple[str, ...]]] = []

    async def announce(self, text: str, device_ids: Sequence[str] = ()) -> int:
        self.texts.append((text, tuple(device_ids)))
        return 1


async def test_detached_calls_report_failures_late_and_are_cancelled_at_close(tasks: TaskService) -> None:
    spoken = Spoken()
    port = GridToolPort(tasks=tasks)
    follower = NitFollower(port, None, announcer=spoken)
    shown, calls = await follow(follower, 'OK<nit>$a = async add_task(title="")\n$b = async add_task(title="x")</nit>')
    assert shown == "OK\n(working on: add_task, add_task; I'll tell you when it is done)" and calls == []
    async with asyncio.timeout(5):
        while True:
            if len(spoken.texts) == 2 and not follower.late:
                break
            await asyncio.sleep(0.01)
    assert sorted(t for t, _ in spoken.texts)[0].startswith("add_task failed: ")
    assert any(t.startswith('add_task finished: {"id": ') for t, _ in spoken.texts)
    assert {d for _, d in spoken.texts} == {("desk",)}

    hang = asyncio.Event()

    async def never(args: dict[str, object]) -> dict[str, object]:
        await hang.wait()
        return {}

    port.tasks.call_add_task_tool = never  # type: ignore[method-assign,assignment]  # a tool that never answers
    await follow(follower, '<nit>$a = async add_task(title="t")</nit>')
    assert len(follower.late) == 1
    await follower.close()
    assert not follower.late and len(spoken.texts) == 2  # cancelled: nothing spoken
