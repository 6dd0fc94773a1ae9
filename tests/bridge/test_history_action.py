"""`history:list` and hello.voice through the real bridge (WebSockets → bridge → DialogService).

A device pages back through its own conversation only (the session comes from
its welcome, never from the client), bad params get precise refusals, and the
voice a hello names is the voice of the dialog session the bridge opens.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from meshkit import TEST_TOKEN, start_test_mesh
from websockets.exceptions import ConnectionClosed

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.app.root import Mesh
from server.dialog.servicer import DialogServicer
from server.llm.scripted import DEFAULT_TEXT

from .gateway_client import GatewayClient, action_is


@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "0", only=("tts", "core", "bridge"))
    yield mesh
    await mesh.stop()


def ws_url(mesh: Mesh) -> str:
    return f"ws://{mesh.addresses['bridge']}/ws"


async def answer(client: GatewayClient, action: str, **params: str) -> gw.ActionResponse:
    rid = await client.request(action, **params)
    seen = await client.recv_until(lambda e: e.HasField("response") and e.response.request_id == rid)
    return seen[-1].response


async def history(client: GatewayClient, **params: str) -> Any:
    response = await answer(client, "history:list", **params)
    assert response.status == 0, response
    return json.loads(response.data)


async def chat(client: GatewayClient, text: str) -> None:
    await client.request("chat", text=text)
    await client.recv_until(lambda e: action_is("state_update")(e) and e.request.params["state"] == "idle")


async def test_a_device_pages_back_through_its_own_conversation(mesh: Mesh) -> None:
    desk = await GatewayClient.open(ws_url(mesh), "desk")
    for n in range(1, 4):
        await chat(desk, f"message {n}")
    await desk.close()
    desk = await GatewayClient.open(ws_url(mesh), "desk")  # a reload: the same session, resumed
    assert desk.welcome is not None and desk.welcome.resumed
    phone = await GatewayClient.open(ws_url(mesh), "phone")
    try:
        first = await history(desk, page_size="2")
        second = await history(desk, page_size="2", page_token=first["next_page_token"])
        everything = await history(desk)
        others = await history(phone)  # another device's session: its own (empty) history
        refused = await answer(phone, "history:list", page_token=first["next_page_token"])
    finally:
        await desk.close()
        await phone.close()
    session = desk.welcome.session_id
    assert [t["turn_id"] for t in first["turns"]] == [f"{session}#2", f"{session}#3"]
    assert [t["user_text"] for t in second["turns"]] == ["message 1"] and second["next_page_token"] == ""
    turn = everything["turns"][0]
    assert turn["assistant_text"] == DEFAULT_TEXT and turn["heard_text"] == DEFAULT_TEXT
    assert turn["interrupted"] is False and turn["abandoned"] is False and turn["create_time"].endswith("Z")
    assert others == {"turns": [], "next_page_token": ""}
    assert refused.status == 1 and refused.code == "INVALID_ARGUMENT" and "another session" in refused.error_msg


@pytest.mark.parametrize(("params", "needle"), [
    ({"page_size": "0"}, "page_size must be a whole number 1..50"),
    ({"page_size": "51"}, "page_size must be a whole number 1..50"),
    ({"page_size": "ten"}, "page_size must be a whole number 1..50"),
    ({"page_token": "%%%"}, "not a token of ListTurns"),
])
async def test_bad_history_params_are_refused_and_the_connection_stays(mesh: Mesh, params: dict[str, str],
                                                                       needle: str) -> None:
    client = await GatewayClient.open(ws_url(mesh), "bad-params")
    try:
        refused = await answer(client, "history:list", **params)
        still = await history(client)
    finally:
        await client.close()
    assert refused.status == 1 and refused.code == "INVALID_ARGUMENT" and needle in refused.error_msg
    assert still["turns"] == []


async def open_with_voice(mesh: Mesh, device: str, voice: str) -> tuple[GatewayClient, gw.Envelope]:
    client = await GatewayClient.open(ws_url(mesh), device, hello=False)
    await client.send(gw.Envelope(id="hello", source_id=device, target_id="master", hello=gw.Hello(
        token=TEST_TOKEN, device_name=device, protocol_version=1, voice=voice)))
    return client, await client.recv()


async def test_the_hello_voice_is_the_dialog_sessions_voice(mesh: Mesh) -> None:
    client, welcome = await open_with_voice(mesh, "voiced", "en-gb")
    assert welcome.HasField("welcome"), welcome
    try:
        await chat(client, "Hello")
        servicer: DialogServicer = mesh.core.dialog
        configs = [s.config for s in servicer.sessions if s.config is not None]
    finally:
        await client.close()
    assert [(c.device_id, c.voice) for c in configs] == [("voiced", "en-gb")]


async def test_a_hello_with_a_bad_voice_is_refused(mesh: Mesh) -> None:
    client, refused = await open_with_voice(mesh, "voiced", "en; rm -rf /")
    assert refused.response.code == "INVALID_ARGUMENT" and "hello.voice" in refused.response.error_msg
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
