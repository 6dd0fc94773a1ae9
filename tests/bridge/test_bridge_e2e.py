"""The bridge end to end: real WebSockets against a real embedded mesh (tts + core + hub + bridge)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from meshkit import start_test_mesh
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bridge.server import start_bridge
from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as hpb
from peromesh.hub.v1 import hub_service_pb2_grpc as hpb_grpc
from server.app.root import Mesh
from server.hub.hub import Hub
from server.hub.nodes import NodeInfo
from server.rpc.channels import open_channel

from .gateway_client import GatewayClient, action_is, actions

MESH = ("tts", "core", "bridge")  # memory is not needed here (and loads a model)
TURN_EVENTS = {"state_update", "assistant_delta", "assistant_final", "audio_begin", "audio_end", "audio_cancel",
               "metrics", "voice_update", "text_response", "transcription", "tool_call", "tool_result"}
CONTENT = {"assistant_delta", "audio_begin", "audio_end", "transcription", "tool_call", "tool_result"}


@pytest.fixture
async def make_mesh(data_dir: Path) -> AsyncIterator[Callable[..., object]]:
    meshes: list[Mesh] = []

    async def make(*flags: str) -> Mesh:
        mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "5", *flags, only=MESH)
        meshes.append(mesh)
        return mesh

    yield make
    for mesh in meshes:
        await mesh.stop()


@pytest.fixture
async def mesh(make_mesh: Callable[..., object]) -> Mesh:
    return await make_mesh()  # type: ignore[no-any-return,operator]


@pytest.fixture(params=["in-process", "grpc"])
async def either_mesh(request: pytest.FixtureRequest, make_mesh: Callable[..., object]) -> Mesh:
    """The bridge attached to the hub in-process (embedded default) or over HubService.Attach."""
    flags = ("--bridge-hub", "grpc") if request.param == "grpc" else ()
    return await make_mesh(*flags)  # type: ignore[no-any-return,operator]


def url(mesh: Mesh) -> str:
    return f"ws://{mesh.addresses['bridge']}/ws"


def hub_of(mesh: Mesh) -> Hub:
    hub: Hub = mesh.core.hub
    return hub


async def closed(client: GatewayClient, wait_s: float = 10.0) -> tuple[int, str]:
    """Read until the server closes; the close code and reason."""
    with pytest.raises(ConnectionClosed) as caught:
        async with asyncio.timeout(wait_s):
            while True:
                await client.ws.recv()
    close = caught.value.rcvd
    assert close is not None, "closed without a close frame"
    return close.code, close.reason


# -- hello / auth ------------------------------------------------------------
@pytest.mark.parametrize(("token", "code", "fragment"), [
    ("wrong", 4401, "hello.token is not the mesh access token"),
    ("", 4401, "hello.token is missing"),
])
async def test_bad_token_gets_error_then_close(either_mesh: Mesh, token: str, code: int, fragment: str) -> None:
    mesh = either_mesh
    client = await GatewayClient.open(url(mesh), "dev", hello=False)
    answer = await client.hello(token)
    assert answer.response.status == 1 and answer.response.code == "UNAUTHENTICATED"
    assert fragment in answer.response.error_msg and answer.response.request_id == "hello"
    assert await closed(client) == (code, answer.response.error_msg)
    assert hub_of(mesh).nodes() == []


async def test_first_message_must_be_hello(mesh: Mesh) -> None:
    client = await GatewayClient.open(url(mesh), "dev", hello=False)
    await client.request("chat", text="hi")
    answer = await client.recv()
    assert "the first envelope must be a hello" in answer.response.error_msg
    assert (await closed(client))[0] == 4401


async def test_garbage_first_frame_is_refused_precisely(mesh: Mesh) -> None:
    async with connect(url(mesh)) as ws:
        await ws.send(b"\x0a\x05ab")
        answer = gw.Envelope.FromString(await ws.recv())  # type: ignore[arg-type]
        assert answer.response.code == "INVALID_ARGUMENT"
        assert "Envelope.id: length 5 at byte 2 exceeds the 2 bytes left" in answer.response.error_msg
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 4400


async def test_welcome_tells_session_and_protocol(mesh: Mesh) -> None:
    client = await GatewayClient.open(url(mesh), "desk")
    assert client.welcome is not None
    assert client.welcome.protocol_version == 1 and client.welcome.node_id == "desk"
    assert len(client.welcome.session_id) == 32 and not client.welcome.resumed
    [node] = hub_of(mesh).nodes()
    assert node.node_id == "desk" and node.transport == hpb.TRANSPORT_WEBSOCKET and node.peer.startswith("127.0.0.1:")


# -- a full turn ---------------------------------------------------------------
@pytest.mark.parametrize("binary", [False, True], ids=["json-client", "binary-client"])
async def test_full_turn_streams_text_and_binary_audio(mesh: Mesh, binary: bool) -> None:
    client = await GatewayClient.open(url(mesh), "desk", binary=binary)
    rid = await client.request("chat", text="Hello Pero")
    got = await client.recv_until(lambda e: action_is("state_update")(e) and e.request.params["state"] == "idle", 60)
    [answer] = [e for e in got if e.HasField("response")]
    turn = json.loads(answer.response.data)["turn_id"]
    assert answer.response.request_id == rid and turn.startswith(client.welcome.session_id)  # type: ignore[union-attr]
    requests = [e for e in got if e.HasField("request") and e.request.action_name in TURN_EVENTS]
    assert all(e.request.params["turn_id"] == turn for e in requests)
    names = actions(got)
    for name in ("state_update", "assistant_delta", "assistant_final", "audio_begin", "audio_end", "metrics"):
        assert name in names, name  # PeroLink v1 clients' events: test_perocore_v1.py
    deltas = "".join(e.request.params["text_delta"] for e in requests if e.request.action_name == "assistant_delta")
    final = next(e for e in requests if e.request.action_name == "assistant_final").request.params
    assert deltas == final["text"] and final["interrupted"] == "false" and len(deltas) > 50
    streams = [(e.stream, t) for e, t in zip(got, client.frame_types[1:], strict=True) if e.HasField("stream")]
    assert streams and all(t is bytes for _, t in streams)  # audio is always binary, never base64 JSON
    assert [s.seq for s, _ in streams] == list(range(len(streams)))
    assert all(4096 <= len(s.data) <= 16384 for s, _ in streams[:-1]) and streams[-1][0].is_end
    assert {s.stream_id for s, _ in streams} == {turn} and {s.turn_id for s, _ in streams} == {turn}
    assert {s.content_type for s, _ in streams} == {"audio/pcm;rate=24000;channels=1"}
    control_types = {t for e, t in zip(got, client.frame_types[1:], strict=True) if not e.HasField("stream")}
    assert control_types == {bytes if binary else str}
    metrics = next(e for e in requests if e.request.action_name == "metrics").request.params
    assert float(metrics["t_first_delta_ms"]) > 0 and float(metrics["t_first_audio_ms"]) > 0


async def test_peromesh_clients_get_no_perocore_twins(mesh: Mesh) -> None:
    client = await GatewayClient.open(url(mesh), "new", protocol_version=1)
    await client.request("chat", text="Hello")
    got = await client.recv_until(lambda e: action_is("state_update")(e) and e.request.params["state"] == "idle", 60)
    names = set(actions(got))
    assert {"state_update", "assistant_delta", "assistant_final", "metrics"} <= names
    assert not names & {"voice_update", "text_response"}


async def test_chat_without_text_is_an_error(mesh: Mesh) -> None:
    client = await GatewayClient.open(url(mesh), "desk")
    rid = await client.request("chat")
    answer = await client.recv()
    assert (answer.response.request_id, answer.response.code) == (rid, "INVALID_ARGUMENT")
    assert "chat needs params.text" in answer.response.error_msg


async def test_interrupt_ends_turn_with_no_late_events(mesh: Mesh) -> None:
    client = await GatewayClient.open(url(mesh), "desk", binary=True)
    await client.request("chat", text="Tell me a long story")
    before = await client.recv_until(lambda e: e.HasField("stream"), 30)
    turn = before[-1].stream.turn_id
    await client.request("interrupt", turn_id=turn)
    after = await client.recv_until(
        lambda e: action_is("state_update")(e) and e.request.params["state"] == "interrupted", 30)
    with pytest.raises(TimeoutError):  # whatever else trickles in within half a second is checked too
        while True:
            after.append(await client.recv(0.5))
    cut = next(i for i, e in enumerate(after) if action_is("audio_cancel")(e))
    late = [e for e in after[cut:] if e.HasField("stream") or e.request.action_name in CONTENT]
    assert late == []
    final = next(e for e in after if action_is("assistant_final")(e)).request.params
    assert final["interrupted"] == "true" and final["turn_id"] == turn
    assert float(next(e for e in after if action_is("metrics")(e)).request.params["t_interrupt_ms"]) >= 0
    # the next turn flows normally
    await client.request("chat", text="again")
    again = await client.recv_until(action_is("assistant_final"), 60)
    assert any(e.HasField("stream") for e in again)


# -- routing -------------------------------------------------------------------
async def test_broadcast_and_unicast_among_three_clients_and_a_native_node(either_mesh: Mesh) -> None:
    mesh = either_mesh
    a = await GatewayClient.open(url(mesh), "a")
    b = await GatewayClient.open(url(mesh), "b", binary=True)
    c = await GatewayClient.open(url(mesh), "c")
    channel = open_channel(mesh.addresses["core"], mesh.token)
    native = hpb_grpc.HubServiceStub(channel).Attach()
    await native.write(hpb.AttachRequest(envelope=gw.Envelope(source_id="n", hello=gw.Hello(token="test-token"))))
    assert (await native.read()).envelope.HasField("welcome")

    await a.request("reminder_trigger", target="broadcast", content="stretch")
    for other in (b, c):
        got = await other.recv()
        assert (got.source_id, got.request.action_name, got.request.params["content"]) == (
            "a", "reminder_trigger", "stretch")
    assert (await native.read()).envelope.request.params["content"] == "stretch"

    rid = await a.request("notify", target="c", title="only c")
    got = await c.recv()
    assert (got.source_id, got.id, got.request.params["title"]) == ("a", rid, "only c")
    await c.send(gw.Envelope(id="c-r", source_id="c", target_id="a",
                             response=gw.ActionResponse(request_id=rid, status=0, data="shown")))
    answer = await a.recv()
    assert (answer.response.request_id, answer.response.data, answer.source_id) == (rid, "shown", "c")
    # b saw neither: its next envelope is the echo of its own heartbeat
    await b.send(gw.Envelope(source_id="b", heartbeat=gw.Heartbeat(seq=5)))
    assert (await b.recv()).heartbeat.seq == 5

    # native → WebSocket, request/response across transports
    await native.write(hpb.AttachRequest(envelope=gw.Envelope(
        id="n1", source_id="n", target_id="b", request=gw.ActionRequest(action_name="ping"))))
    got = await b.recv()
    await b.send(gw.Envelope(source_id="b", target_id="master", response=gw.ActionResponse(request_id=got.id,
                                                                                         data="pong")))
    assert (await native.read()).envelope.response.data == "pong"
    native.cancel()
    await channel.close()


async def test_unknown_target_and_master_actions(mesh: Mesh) -> None:
    async def add_task(node: NodeInfo, envelope: gw.Envelope) -> str:
        return json.dumps({"title": envelope.request.params["title"], "by": node.node_id})

    hub_of(mesh).on_action("task:add", add_task)
    a = await GatewayClient.open(url(mesh), "a")
    rid = await a.request("task:add", title="milk")
    answer = await a.recv()
    assert answer.response.request_id == rid and json.loads(answer.response.data) == {"title": "milk", "by": "a"}
    rid = await a.request("hi", target="ghost")
    answer = await a.recv()
    assert (answer.response.request_id, answer.response.code) == (rid, "NOT_FOUND")
    assert hub_of(mesh).broadcast("schedule_update", {"n": "5"}) == 1
    assert (await a.recv()).request.action_name == "schedule_update"


async def test_two_bridges_share_one_hub(mesh: Mesh) -> None:
    second = await start_bridge(mesh.addresses["core"], token=mesh.token)
    try:
        a = await GatewayClient.open(url(mesh), "a")
        b = await GatewayClient.open(second.url, "b")
        await a.request("hello_all", target="broadcast")
        assert (await b.recv()).request.action_name == "hello_all"
        assert [n.node_id for n in hub_of(mesh).nodes()] == ["a", "b"]
    finally:
        await second.stop()


# -- liveness and sessions -----------------------------------------------------
@pytest.mark.parametrize("hub_port", ["auto", "grpc"])
async def test_heartbeats_keep_alive_silence_drops_and_grace_expires(make_mesh: Callable[..., object],
                                                                     hub_port: str) -> None:
    mesh: Mesh = await make_mesh("--hub-heartbeat-timeout", "0.6", "--hub-resume-grace", "0.3",  # type: ignore[operator]
                                 "--bridge-hub", hub_port)
    quiet = await GatewayClient.open(url(mesh), "quiet")
    alive = await GatewayClient.open(url(mesh), "alive")
    assert alive.welcome is not None and alive.welcome.heartbeat_timeout_ms == 600
    for seq in range(12):  # 1.2 s of heartbeats, twice the timeout
        await alive.send(gw.Envelope(source_id="alive", heartbeat=gw.Heartbeat(seq=seq)))
        assert (await alive.recv()).heartbeat.seq == seq
        await asyncio.sleep(0.1)
    code, reason = await closed(quiet)
    assert code == 4408 and "heartbeat timeout" in reason
    assert [n.node_id for n in hub_of(mesh).nodes()] == ["alive"]
    old_session = quiet.welcome.session_id  # type: ignore[union-attr]
    await asyncio.sleep(0.5)  # past the grace window
    again = await GatewayClient.open(url(mesh), "quiet")
    assert again.welcome is not None and not again.welcome.resumed and again.welcome.session_id != old_session


async def test_reconnect_inside_grace_resumes_session_and_history(either_mesh: Mesh) -> None:
    mesh = either_mesh
    first = await GatewayClient.open(url(mesh), "phone")
    await first.request("chat", text="My name is Ada")
    await first.recv_until(action_is("metrics"), 60)
    await first.close()
    await asyncio.sleep(0.2)
    again = await GatewayClient.open(url(mesh), "phone")
    assert first.welcome is not None and again.welcome is not None
    assert again.welcome.resumed and again.welcome.session_id == first.welcome.session_id
    await again.request("chat", text="What is my name?")  # the dialog continues the same history
    got = await again.recv_until(lambda e: e.HasField("response"), 60)
    assert json.loads(got[-1].response.data)["turn_id"] == f"{first.welcome.session_id}#2"
    other = await GatewayClient.open(url(mesh), "tablet")
    assert other.welcome is not None and other.welcome.session_id != first.welcome.session_id


async def test_newer_connection_of_a_device_replaces_the_older(either_mesh: Mesh) -> None:
    mesh = either_mesh
    old = await GatewayClient.open(url(mesh), "phone")
    new = await GatewayClient.open(url(mesh), "phone")
    assert new.welcome is not None and new.welcome.resumed
    code, reason = await closed(old)
    assert code == 4409 and "replaced" in reason


# -- flow control and limits ---------------------------------------------------
async def test_slow_client_is_disconnected_with_a_reason(make_mesh: Callable[..., object]) -> None:
    mesh: Mesh = await make_mesh("--bridge-queue-frames", "32")  # type: ignore[operator]
    host, port = mesh.addresses["bridge"].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # stop reading → the kernel buffer fills fast
    sock.connect((host, int(port)))
    slow = await GatewayClient.open(url(mesh), "slow", sock=sock, max_queue=1)
    flooder = await GatewayClient.open(url(mesh), "flooder", binary=True)
    blob = "x" * 100_000
    for _ in range(80):  # ~8 MB for a client that reads nothing
        await flooder.request("spam", target="slow", blob=blob)
    async with asyncio.timeout(30):
        while hub_of(mesh).node("slow") is not None:  # noqa: ASYNC110 - polling the hub's registry
            await asyncio.sleep(0.05)
    assert hub_of(mesh).node("flooder") is not None  # the others are unaffected
    code, reason = await closed(slow, 30)
    assert code == 1008 and reason.startswith("slow client:") and "limits 32 frames" in reason


async def test_frame_size_limit_errors_then_hard_limit_closes(mesh: Mesh) -> None:
    client = await GatewayClient.open(url(mesh), "big", binary=True)
    await client.request("x", target="broadcast", blob="y" * 300_000)  # over 256 KiB: refused, still connected
    answer = await client.recv()
    assert answer.response.code == "INVALID_ARGUMENT"
    assert "exceeds the limit of 262144 bytes" in answer.response.error_msg
    await client.send(gw.Envelope(source_id="big", heartbeat=gw.Heartbeat(seq=1)))
    assert (await client.recv()).heartbeat.seq == 1
    await client.request("x", target="broadcast", blob="y" * 1_100_000)  # over the hard limit: closed
    assert (await closed(client))[0] == 1009


async def test_message_rate_limit(make_mesh: Callable[..., object]) -> None:
    mesh: Mesh = await make_mesh("--bridge-rate", "20")  # type: ignore[operator]
    client = await GatewayClient.open(url(mesh), "chatty")
    for seq in range(300):
        await client.send(gw.Envelope(source_id="chatty", heartbeat=gw.Heartbeat(seq=seq)))
    got: list[gw.Envelope] = []
    with pytest.raises(ConnectionClosed) as caught:
        async with asyncio.timeout(10):
            while True:
                got.append(await client.recv())
    errors = [e.response for e in got if e.HasField("response")]
    assert errors and errors[0].code == "RESOURCE_EXHAUSTED" and "at most 20 messages/s" in errors[0].error_msg
    assert 30 <= sum(e.HasField("heartbeat") for e in got) <= 60  # the burst (40), then refusals
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1008
    assert "message rate limit" in caught.value.rcvd.reason


# -- the console is served -----------------------------------------------------
async def test_console_and_sdk_are_served(mesh: Mesh) -> None:
    host, port = mesh.addresses["bridge"].rsplit(":", 1)

    async def get(path: str) -> tuple[str, str]:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        writer.close()
        return head.split("\r\n", 1)[0], head

    status, head = await get("/")
    assert status == "HTTP/1.1 200 OK" and "text/html" in head
    status, head = await get("/js/peromesh.js")
    assert status == "HTTP/1.1 200 OK" and "text/javascript" in head
    assert (await get("/nope"))[0] == "HTTP/1.1 404 Not Found"
    assert grpc


# -- speech in -------------------------------------------------------------------
async def test_audio_stream_in_reaches_the_dialog_as_user_audio(mesh: Mesh) -> None:
    client = await GatewayClient.open(url(mesh), "mic", binary=True)
    for seq in range(3):
        await client.send(gw.Envelope(id=f"a{seq}", source_id="mic", target_id="master", stream=gw.DataStream(
            stream_id="utt-1", data=bytes(4096), content_type="audio/pcm;rate=16000", seq=seq)))
    await client.send(gw.Envelope(id="a-end", source_id="mic", target_id="master", stream=gw.DataStream(
        stream_id="utt-1", is_end=True, content_type="audio/pcm;rate=16000", seq=3)))
    first = await client.recv(20)
    if first.HasField("response") or action_is("error")(first):  # no ASR configured: a precise error
        message = first.response.error_msg if first.HasField("response") else first.request.params["message"]
        assert "user_audio" in message
    else:  # an ASR engine answers with the turn's events
        assert first.request.action_name in ("state_update", "transcription", "voice_update"), first


async def test_silent_utterance_does_not_steal_the_next_chat_answer(mesh: Mesh) -> None:
    client = await GatewayClient.open(url(mesh), "mic2", binary=True)
    await client.send(gw.Envelope(id="u1", source_id="mic2", target_id="master", stream=gw.DataStream(
        stream_id="u", data=bytes(8192), content_type="audio/pcm;rate=16000")))
    await client.send(gw.Envelope(id="u2", source_id="mic2", target_id="master", stream=gw.DataStream(
        stream_id="u", is_end=True, content_type="audio/pcm;rate=16000")))
    await client.recv(30)  # whatever the dialog says about the silence (transcript or error)
    rid = await client.request("chat", text="hello")
    got = await client.recv_until(lambda e: e.HasField("response") and e.response.request_id == rid, 30)
    assert "turn_id" in json.loads(got[-1].response.data)


async def test_unreachable_core_closes_clients_with_try_again_later() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    bridge = await start_bridge(dead)
    try:
        client = await GatewayClient.open(bridge.url, "dev", hello=False)
        answer = await client.hello("test-token")
        assert answer.response.code == "UNAVAILABLE"
        assert (await closed(client))[0] == 1013
    finally:
        await bridge.stop()


async def test_interrupt_purges_what_is_already_queued_for_a_lagging_client(mesh: Mesh) -> None:
    host, port = mesh.addresses["bridge"].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that lags: audio queues in the bridge
    sock.connect((host, int(port)))
    client = await GatewayClient.open(url(mesh), "laggy", binary=True, sock=sock, max_queue=1)
    bridge = mesh.bridge
    [connection] = [c for c in bridge.connections if c.node_id == "laggy"]  # type: ignore[attr-defined]
    server_side = connection.ws.transport.get_extra_info("socket")
    server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # and a thin pipe, as on a slow network
    await client.request("chat", text="Tell me a long story")
    first = await client.recv_until(lambda e: e.HasField("stream"), 30)
    turn = first[-1].stream.turn_id
    async with asyncio.timeout(20):  # stop reading until the bridge holds a backlog for us
        while len(connection.queue) < 5:  # noqa: ASYNC110 - watching the bridge's queue
            await asyncio.sleep(0.01)
    await client.request("interrupt", turn_id=turn)
    after = await client.recv_until(
        lambda e: action_is("state_update")(e) and e.request.params["state"] == "interrupted", 30)
    cut = next(i for i, e in enumerate(after) if action_is("audio_cancel")(e))
    assert [e for e in after[cut:] if e.HasField("stream") or e.request.action_name in CONTENT] == []
    assert connection.queue.dropped_cancelled > 0  # queued content of the cut turn never left the bridge
    await client.close()
    sock.close()
