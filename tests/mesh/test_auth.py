"""gRPC auth: a token is demanded off loopback and wherever configured; health stays open."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from meshkit import Conversation, start_test_mesh

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.rpc.auth import bearer_metadata, is_loopback, token_matches
from server.rpc.channels import open_channel
from server.rpc.serving import auth_token_for


def test_off_loopback_requires_a_token() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("")
    with pytest.raises(ValueError, match="without a token"):
        auth_token_for("0.0.0.0", None)
    assert auth_token_for("0.0.0.0", "s3cret") == "s3cret"
    assert auth_token_for("127.0.0.1", None) is None
    assert token_matches("abc", "abc") and not token_matches("abc", "abd")


async def test_configured_token_is_enforced(data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, "--token", "s3cret", "--scripted-delay-ms", "1", only=["core"])
    try:
        async with open_channel(mesh.addresses["core"]) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = await health.Check(health_pb2.HealthCheckRequest(service="peromesh.dialog.v1.DialogService"))
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            for metadata in [(), (("authorization", "Bearer wrong"),), (("authorization", "s3cret"),)]:
                talk = Conversation(channel, metadata)
                talk.config(text_only=True)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await talk.call.read()
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
                await talk.close()
            talk = Conversation(channel, bearer_metadata("s3cret"))
            talk.config(text_only=True)
            assert (await talk.next()).HasField("session_started")
            talk.say("hi")
            assert (await talk.until_state(pb.STATE_IDLE))[-1].state_update.state == pb.STATE_IDLE
            await talk.close()
    finally:
        await mesh.stop()
