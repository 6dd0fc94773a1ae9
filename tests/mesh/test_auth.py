"""gRPC auth: the mesh token is demanded by default, also on loopback; health stays open.

`--allow-unauthenticated-loopback` (or PEROMESH_ALLOW_UNAUTHENTICATED_LOOPBACK)
restores the open loopback explicitly. A refused call is answered before its
bytes are decoded. The token file is born 0600.
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from meshkit import TEST_TOKEN, Conversation, start_test_mesh

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as dpb_grpc
from peromesh.hub.v1 import hub_service_pb2 as hub_pb
from peromesh.hub.v1 import hub_service_pb2_grpc as hub_grpc
from server.app.token import load_or_create_token
from server.cli import parse_serve
from server.rpc.auth import bearer_metadata, is_loopback, token_matches
from server.rpc.channels import open_channel
from server.rpc.serving import auth_token_for

CONVERSE = "/peromesh.dialog.v1.DialogService/Converse"
LIST_NODES = "/peromesh.hub.v1.HubService/ListNodes"


def test_a_token_is_required_unless_loopback_is_opened_explicitly() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("")
    with pytest.raises(ValueError, match="without a token"):
        auth_token_for("0.0.0.0", None)
    with pytest.raises(ValueError, match="without a token"):
        auth_token_for("0.0.0.0", None, allow_unauthenticated_loopback=True)
    with pytest.raises(ValueError, match="--allow-unauthenticated-loopback"):
        auth_token_for("127.0.0.1", None)
    assert auth_token_for("127.0.0.1", None, allow_unauthenticated_loopback=True) is None
    assert auth_token_for("0.0.0.0", "s3cret") == "s3cret"
    assert auth_token_for("127.0.0.1", "s3cret", allow_unauthenticated_loopback=True) == "s3cret"
    assert token_matches("abc", "abc") and not token_matches("abc", "abd")


def test_the_flag_has_an_environment_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    def parsed() -> bool:
        return parse_serve([]).common.allow_unauthenticated_loopback

    assert not parsed()
    monkeypatch.setenv("PEROMESH_ALLOW_UNAUTHENTICATED_LOOPBACK", "1")
    assert parsed()
    monkeypatch.setenv("PEROMESH_ALLOW_UNAUTHENTICATED_LOOPBACK", "0")
    assert not parsed()


def test_the_token_file_is_born_private_and_shared_by_racing_starts(tmp_path: Path) -> None:
    old = os.umask(0)  # even a permissive umask must not widen the file
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: load_or_create_token(tmp_path / "data", None), range(8)))
    finally:
        os.umask(old)
    path = tmp_path / "data" / "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len({token for token, _ in results}) == 1 and sum(created for _, created in results) == 1
    assert results[0][0] == path.read_text().strip() and len(results[0][0]) >= 24
    assert sorted(p.name for p in path.parent.iterdir()) == ["token"]  # no temp file left behind
    assert load_or_create_token(path.parent, None) == (results[0][0], False)
    assert load_or_create_token(path.parent, "given") == ("given", False)


async def _raw_call(address: str, method: str, payload: bytes, token: str | None = None) -> grpc.StatusCode:
    """`payload` as the request bytes of `method` (no serializer: nothing is checked on the client)."""
    async with open_channel(address, token) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        try:
            await call(payload, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK


async def _converse_code(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> grpc.StatusCode:
    """How a Converse stream that sends its config ends (read directly: no reader task racing us)."""
    call = dpb_grpc.DialogServiceStub(channel).Converse(
        iter([pb.ConverseRequest(config=pb.SessionConfig(text_only=True))]), metadata=metadata)
    try:
        async for _ in call:
            pass
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return await call.code()


async def test_loopback_demands_the_mesh_token_by_default(data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "1", only=["core"])
    try:
        core = mesh.addresses["core"]
        async with open_channel(core) as anonymous:
            health = health_pb2_grpc.HealthStub(anonymous)
            status = await health.Check(health_pb2.HealthCheckRequest(service="peromesh.dialog.v1.DialogService"))
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await hub_grpc.HubServiceStub(anonymous).ListNodes(hub_pb.ListNodesRequest())
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "authorization: Bearer" in (caught.value.details() or "")
            assert await _converse_code(anonymous) == grpc.StatusCode.UNAUTHENTICATED
        # refused before decoding: garbage from a stranger is UNAUTHENTICATED, not INVALID_ARGUMENT
        assert await _raw_call(core, LIST_NODES, b"\xff\xff\xff") == grpc.StatusCode.UNAUTHENTICATED
        assert await _raw_call(core, LIST_NODES, b"\xff\xff\xff", TEST_TOKEN) == grpc.StatusCode.INVALID_ARGUMENT
        assert await _raw_call(core, LIST_NODES, b"", TEST_TOKEN) == grpc.StatusCode.OK
        async with open_channel(core, TEST_TOKEN) as channel:
            talk = Conversation(channel)
            talk.config(text_only=True)
            assert (await talk.next()).HasField("session_started")
            talk.say("hi")
            assert (await talk.until_state(pb.STATE_IDLE))[-1].state_update.state == pb.STATE_IDLE
            await talk.close()
    finally:
        await mesh.stop()


async def test_allow_unauthenticated_loopback_restores_the_open_loopback(data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, "--allow-unauthenticated-loopback", "--scripted-delay-ms", "1",
                                 only=["core"])
    try:
        assert mesh.token is None
        assert await _raw_call(mesh.addresses["core"], LIST_NODES, b"") == grpc.StatusCode.OK
    finally:
        await mesh.stop()


async def test_a_configured_token_is_enforced_even_with_the_open_loopback(data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, "--token", "s3cret", "--allow-unauthenticated-loopback",
                                 "--scripted-delay-ms", "1", only=["core"])
    try:
        async with open_channel(mesh.addresses["core"]) as channel:
            for metadata in [(), (("authorization", "Bearer wrong"),), (("authorization", "s3cret"),)]:
                assert await _converse_code(channel, metadata) == grpc.StatusCode.UNAUTHENTICATED
            talk = Conversation(channel, bearer_metadata("s3cret"))
            talk.config(text_only=True)
            assert (await talk.next()).HasField("session_started")
            await talk.close()
    finally:
        await mesh.stop()


async def test_a_stranger_s_stream_still_in_flight_is_refused_as_unauthenticated(data_dir: Path) -> None:
    """Many messages on a refused stream: the status must not race the client's sending (INTERNAL)."""
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "1", only=["core"])
    try:
        async with open_channel(mesh.addresses["core"]) as anonymous:
            for _ in range(5):
                requests = [pb.ConverseRequest(config=pb.SessionConfig(text_only=True))]
                requests += [pb.ConverseRequest(user_text=pb.UserText(text="x" * 2000)) for _ in range(200)]
                call = dpb_grpc.DialogServiceStub(anonymous).Converse(iter(requests))
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    async for _ in call:
                        pass
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, caught.value.details()
    finally:
        await mesh.stop()
