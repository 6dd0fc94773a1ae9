"""Dangerous capabilities cannot be routed around the allow-list: node → node and broadcast
requests obey the same DangerPolicy as HubService.Invoke and the model's tools.

A refused request gets a PERMISSION_DENIED error answer naming the capability and the flag that
would allow it, and no recipient ever sees it; an allowed one (or a harmless one) is delivered.
"""

from __future__ import annotations

import asyncio

import pytest

from .conftest import Grid
from .grid_node import GridNode, cap


@pytest.fixture
def allowed_dangerous() -> tuple[str, ...]:
    return ("screen.lock",)  # shell.run and power.reboot stay refused


async def _nodes(grid: Grid) -> tuple[GridNode, GridNode, GridNode]:
    attacker = await grid.node("page", "browser")
    desk = await grid.node("desk", "desktop")
    laptop = await grid.node("laptop", "desktop")
    for node in (desk, laptop):
        node.handlers["shell.run"] = lambda p: "ran"
        node.handlers["power.reboot"] = lambda p: "rebooting"
        node.handlers["screen.lock"] = lambda p: "locked"
        node.handlers["desktop.notify"] = lambda p: "shown"
        assert (await node.register(cap("shell.run", "Run a shell command", dangerous=True),
                                    cap("power.reboot", "Reboot the PC", dangerous=True),
                                    cap("screen.lock", "Lock the screen", dangerous=True),
                                    cap("desktop.notify", "Show a notification"))).status == 0
    return attacker, desk, laptop


async def test_dangerous_requests_to_a_node_id_or_broadcast_are_refused_unseen(grid: Grid) -> None:
    attacker, desk, laptop = await _nodes(grid)
    direct = await attacker.request("shell.run", "r1", target="desk", cmd="rm -rf ~")
    assert direct.status == 1 and direct.code == "PERMISSION_DENIED"
    assert "desktop.shell.run is marked dangerous" in direct.error_msg
    assert "--allow-dangerous shell.run" in direct.error_msg and "'desk'" in direct.error_msg
    by_tool_name = await attacker.request("desktop.shell.run", "r2", target="laptop", cmd="id")
    assert by_tool_name.code == "PERMISSION_DENIED"
    everyone = await attacker.request("power.reboot", "r3", target="broadcast")
    assert everyone.status == 1 and everyone.code == "PERMISSION_DENIED"
    assert "desktop.power.reboot is marked dangerous" in everyone.error_msg
    await asyncio.sleep(0.3)  # anything routed would have arrived by now
    assert [e.request.action_name for n in (desk, laptop) for e in n.requests] == []


async def test_allowed_and_harmless_requests_still_pass(grid: Grid) -> None:
    attacker, desk, laptop = await _nodes(grid)
    allowed = await attacker.request("screen.lock", "a1", target="desk")
    assert (allowed.status, allowed.data) == (0, "locked")
    harmless = await attacker.request("desktop.notify", "a2", target="laptop", text="hi")
    assert (harmless.status, harmless.data) == (0, "shown")
    assert [e.request.action_name for e in desk.requests] == ["screen.lock"]
    assert [e.request.action_name for e in laptop.requests] == ["desktop.notify"]
