"""The capability grid over real gRPC Attach streams: three nodes, their tools, routed invocations."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as pb
from server.hub.hub import HubConfig
from server.tools.catalog import ToolCatalog, builtin_specs

from .conftest import Grid, eventually
from .grid_node import NEVER, GridNode, cap

LOCATION_SCHEMA = {"type": "object", "properties": {"precision": {"type": "string", "enum": ["coarse", "fine"]}},
                   "additionalProperties": False}
NOTIFY_SCHEMA = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"},
                                                                        "level": {"type": "integer"}}}


async def three_nodes(grid: Grid) -> tuple[GridNode, GridNode, GridNode]:
    """phone (mobile), desk and laptop (both desktop: both offer desktop.notify)."""
    phone = await grid.node("phone", "mobile")
    phone.handlers["location.get"] = lambda p: {"lat": 31.2, "lon": 121.5, "precision": p.get("precision", "")}
    assert (await phone.register(cap("location.get", "Where the phone is", LOCATION_SCHEMA))).status == 0
    desk = await grid.node("desk", "desktop")
    desk.handlers["desktop.notify"] = lambda p: {"shown_on": "desk", "text": p["text"]}
    desk.handlers["shell.run"] = lambda p: "ran"
    desk.handlers["power.reboot"] = lambda p: "rebooting"
    desk.handlers["slow.op"] = lambda p: NEVER
    desk.handlers["broken.op"] = lambda p: gw.ActionResponse(status=1, code="FAILED_PRECONDITION",
                                                             error_msg="the printer is out of paper")
    assert (await desk.register(cap("desktop.notify", "Show a notification", NOTIFY_SCHEMA),
                                cap("shell.run", "Run a shell command", dangerous=True),
                                cap("power.reboot", "Reboot the PC", dangerous=True),
                                cap("slow.op"), cap("broken.op"))).status == 0
    laptop = await grid.node("laptop", "desktop")
    laptop.handlers["desktop.notify"] = lambda p: {"shown_on": "laptop", "text": p["text"]}
    assert (await laptop.register(cap("desktop.notify", "Show a notification", NOTIFY_SCHEMA))).status == 0
    return phone, desk, laptop


def tool_names(catalog: ToolCatalog) -> set[str]:
    return {t.name for t in catalog.tools()}


async def invoke(grid: Grid, name: str, args: object = None, preferred: str = "",
                 timeout_ms: int = 0) -> pb.InvokeResponse:
    return await grid.stub.Invoke(pb.InvokeRequest(name=name, arguments_json=json.dumps(args) if args else "",
                                                   preferred_node_id=preferred, timeout_ms=timeout_ms))


async def test_tool_appears_with_its_node_and_disappears_when_it_drops(grid: Grid) -> None:
    catalog = ToolCatalog(builtin_specs(reminders=True, tasks=True, memory=False), grid.grid)
    assert tool_names(catalog) == {"add_reminder", "add_task"}
    phone, desk, _laptop = await three_nodes(grid)
    assert tool_names(catalog) == {"add_reminder", "add_task", "mobile.location.get", "desktop.desktop.notify",
                                   "desktop.slow.op", "desktop.broken.op", "desktop.power.reboot"}
    notify = catalog.find("desktop.desktop.notify")
    assert notify is not None and notify.node_ids == ("desk", "laptop") and notify.parameters == NOTIFY_SCHEMA
    assert catalog.find("location.get") is catalog.find("mobile.location.get")  # bare capability names resolve
    assert "shell.run" not in {t.capability for t in catalog.tools()}  # dangerous and not allowed: not offered

    await phone.close()  # the phone drops: its tool goes with it
    await eventually(lambda: "mobile.location.get" not in tool_names(catalog))
    await desk.close()
    await eventually(lambda: "desktop.slow.op" not in tool_names(catalog))
    assert catalog.find("desktop.desktop.notify").node_ids == ("laptop",)  # type: ignore[union-attr]
    listed = await grid.stub.ListCapabilities(pb.ListCapabilitiesRequest())
    assert [(c.tool_name, c.node_id, c.node_kind) for c in listed.capabilities] == [
        ("desktop.desktop.notify", "laptop", "desktop")]
    assert json.loads(listed.capabilities[0].capability.params_schema_json) == NOTIFY_SCHEMA


async def test_list_capabilities_and_nodes(grid: Grid) -> None:
    await three_nodes(grid)
    listed = await grid.stub.ListCapabilities(pb.ListCapabilitiesRequest())
    rows = [(c.tool_name, c.node_id, c.capability.dangerous) for c in listed.capabilities]
    assert ("desktop.desktop.notify", "desk", False) in rows and ("desktop.desktop.notify", "laptop", False) in rows
    assert ("desktop.shell.run", "desk", True) in rows and ("mobile.location.get", "phone", False) in rows
    nodes = await grid.stub.ListNodes(pb.ListNodesRequest())
    assert [n.node_id for n in nodes.nodes] == ["desk", "laptop", "phone"]


async def test_invocation_is_routed_to_the_owner_with_the_requester_first(grid: Grid) -> None:
    phone, desk, laptop = await three_nodes(grid)
    got = await invoke(grid, "mobile.location.get", {"precision": "fine"}, preferred="desk")
    assert got.node_id == "phone" and got.capability == "location.get"  # only the phone has it
    assert json.loads(got.result) == {"lat": 31.2, "lon": 121.5, "precision": "fine"}
    params = phone.requests[-1].request.params
    assert params["precision"] == "fine" and json.loads(params["args_json"]) == {"precision": "fine"}

    for requester in ("laptop", "desk", "laptop"):  # both desktops offer it: the requesting device goes first
        got = await invoke(grid, "desktop.notify", {"text": "hi", "level": 2}, preferred=requester)
        assert got.node_id == requester and json.loads(got.result)["shown_on"] == requester
    assert laptop.requests[-1].request.params["level"] == "2"  # non-strings arrive JSON-encoded
    assert [len(desk.requests), len(laptop.requests)] == [1, 2]

    await desk.heartbeat()  # no preference: the node heard from most recently
    await eventually(lambda: grid.hub.node("desk").last_seen > grid.hub.node("laptop").last_seen)  # type: ignore
    assert (await invoke(grid, "desktop.desktop.notify", {"text": "x"})).node_id == "desk"


async def test_timeout_gives_a_clear_deadline_exceeded(grid: Grid) -> None:
    await three_nodes(grid)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await invoke(grid, "slow.op", timeout_ms=300)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert err.value.details() == "node 'desk' did not answer desktop.slow.op within 0.3 s"
    # the late request is forgotten: the next call works normally
    assert (await invoke(grid, "desktop.notify", {"text": "after"}, preferred="desk")).node_id == "desk"


async def test_dangerous_capabilities_are_refused_unless_allowed_by_name(grid: Grid) -> None:
    _, desk, _ = await three_nodes(grid)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await invoke(grid, "shell.run", {"cmd": "rm -rf /"})
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "desktop.shell.run is marked dangerous" in err.value.details()
    assert "--allow-dangerous shell.run" in err.value.details()
    assert not any(r.request.action_name == "shell.run" for r in desk.requests)  # never reached the node
    allowed = await invoke(grid, "desktop.power.reboot")  # the grid fixture allows power.reboot
    assert (allowed.node_id, allowed.result) == ("desk", "rebooting")


async def test_errors_not_found_bad_arguments_node_failure_and_departure(grid: Grid) -> None:
    phone, _, _ = await three_nodes(grid)
    cases = [
        ("camera.snap", None, grpc.StatusCode.NOT_FOUND, "no attached node offers 'camera.snap' (online capabilities:"),
        ("desktop.notify", {"level": 1}, grpc.StatusCode.INVALID_ARGUMENT,
         "arguments do not match the schema of desktop.desktop.notify: at the top level: 'text' is a required "
         "property"),
        ("location.get", {"precision": "exact"}, grpc.StatusCode.INVALID_ARGUMENT, "at /precision: 'exact' is not "
                                                                                  "one of ['coarse', 'fine']"),
        ("broken.op", None, grpc.StatusCode.FAILED_PRECONDITION,
         "node 'desk' failed desktop.broken.op: the printer is out of paper"),
    ]
    for name, args, code, message in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await invoke(grid, name, args)
        assert err.value.code() == code and message in err.value.details(), (name, err.value.details())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grid.stub.Invoke(pb.InvokeRequest(name="location.get", arguments_json="[1, 2]"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "must be a JSON object" in err.value.details()

    phone.handlers["location.get"] = lambda p: NEVER  # the phone hangs, then drops mid-call
    call = asyncio.create_task(invoke(grid, "location.get", timeout_ms=10_000))
    await eventually(lambda: len(phone.requests) == 1)
    await phone.close()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "left before answering" in err.value.details()


@pytest.mark.parametrize(("capability", "reason"), [
    (cap("bad.schema", schema={"type": "object", "properties": {"x": {"type": "strin"}}}),
     "capability 'bad.schema' rejected: params_schema_json is not a valid JSON Schema: at /properties/x/type: "),
    (cap("bad.json", schema='{"type": "object", "properties": }'),
     "capability 'bad.json' rejected: params_schema_json is not JSON: Expecting value at line 1, column 34"),
    (cap("not.object", schema={"type": "array"}),
     "capability 'not.object' rejected: params_schema_json must describe an object (\"type\": \"object\"), "
     "got \"type\": \"array\""),
    (cap("bad.required", schema={"type": "object", "required": "text"}),
     "capability 'bad.required' rejected: params_schema_json is not a valid JSON Schema: at /required: "
     "'text' is not of type 'array'"),
    (cap("has space"), "capability 'has space' rejected: name 'has space' is not a capability name"),
])
async def test_invalid_capabilities_are_rejected_precisely(grid: Grid, capability: gw.Capability,
                                                           reason: str) -> None:
    node = await grid.node("desk", "desktop")
    answer = await node.register(cap("good.one", schema=NOTIFY_SCHEMA), capability)
    assert answer.status == 1 and answer.code == "INVALID_ARGUMENT" and answer.request_id == "reg"
    assert answer.error_msg.startswith(reason), answer.error_msg
    assert answer.error_msg.endswith("(1 other capability registered)")
    assert sorted(grid.hub.node("desk").capabilities) == ["good.one"]  # type: ignore[union-attr]
    # the node stays attached and can register a corrected list
    assert (await node.register(cap("good.one"), cap("fixed.one", schema={"type": "object"}), rid="r2")).status == 0
    assert sorted(grid.hub.node("desk").capabilities) == ["fixed.one", "good.one"]  # type: ignore[union-attr]


async def test_capability_changes_are_watched(grid: Grid) -> None:
    await grid.node("anchor", "test")
    watch = grid.stub.WatchNodes(pb.WatchNodesRequest())
    first = await watch.read()  # the snapshot: from here on the watch sees every change
    assert (first.change, first.node.node_id) == (pb.NODE_CHANGE_PRESENT, "anchor")
    phone = await grid.node("phone", "mobile")
    await phone.register(cap("location.get"))
    await phone.register(rid="dereg")  # an empty list withdraws every capability
    await phone.close()
    seen = []
    async with asyncio.timeout(5):
        while True:
            change = await watch.read()
            assert change.node.node_id == "phone"
            seen.append((change.change, [c.name for c in change.node.capabilities]))
            if change.change == pb.NODE_CHANGE_LEFT:
                break
    watch.cancel()
    assert seen == [(pb.NODE_CHANGE_JOINED, []), (pb.NODE_CHANGE_UPDATED, ["location.get"]),
                    (pb.NODE_CHANGE_UPDATED, []), (pb.NODE_CHANGE_LEFT, [])]


@pytest.mark.parametrize("hub_config", [HubConfig(heartbeat_interval_s=0.1, heartbeat_timeout_s=0.4)])
async def test_a_silent_node_times_out_and_its_tools_disappear(grid: Grid) -> None:
    catalog = ToolCatalog([], grid.grid)
    phone = await grid.node("phone", "mobile")
    await phone.register(cap("location.get"))
    desk = await grid.node("desk", "desktop")
    await desk.register(cap("desktop.notify"))
    assert tool_names(catalog) == {"mobile.location.get", "desktop.desktop.notify"}
    async with asyncio.timeout(5):  # the desk keeps beating, the phone falls silent
        while "mobile.location.get" in tool_names(catalog):
            await desk.heartbeat()
            await asyncio.sleep(0.1)
    assert tool_names(catalog) == {"desktop.desktop.notify"}
    assert grid.hub.node("phone") is None


async def test_a_tool_name_wins_over_a_bare_capability_name(grid: Grid) -> None:
    pc = await grid.node("pc", "desktop")  # offers "notify": its tool is desktop.notify
    pc.handlers["notify"] = lambda p: "pc"
    await pc.register(cap("notify"))
    desk = await grid.node("desk", "desktop")  # offers "desktop.notify": its tool is desktop.desktop.notify
    desk.handlers["desktop.notify"] = lambda p: "desk"
    await desk.register(cap("desktop.notify"))
    assert (await invoke(grid, "desktop.notify", preferred="desk")).node_id == "pc"
    assert (await invoke(grid, "desktop.desktop.notify")).node_id == "desk"


async def test_hello_capability_names_become_tools_only_when_well_formed(grid: Grid) -> None:
    node = GridNode(grid.stub, "old-client", "web")
    grid.nodes.append(node)
    await node.attach(capabilities=["ui.display", "not a name"])  # PeroLink v1: names in the hello
    assert {t.name for t in ToolCatalog([], grid.grid).tools()} == {"web.ui.display"}
