"""Undecodable request bytes get INVALID_ARGUMENT with the reason, on unary and streaming methods,
and one log line per method in a while (not a traceback per message)."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from meshkit import TEST_TOKEN, start_test_mesh

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.rpc.channels import open_channel
from server.rpc.decoding import RateLimitedLog

GARBAGE = b"\xff\xff\xff\xff"
CONFIG = pb.ConverseRequest(config=pb.SessionConfig(text_only=True)).SerializeToString()


async def _status(channel: grpc.aio.Channel, path: str, requests: list[bytes], streaming: bool) -> tuple[
        grpc.StatusCode, str]:
    try:
        if streaming:
            call = channel.stream_stream(path, request_serializer=None, response_deserializer=None)(
                iter(requests), timeout=20)
            async for _ in call:
                pass
            return await call.code(), await call.details() or ""
        await channel.unary_unary(path, request_serializer=None, response_deserializer=None)(requests[0], timeout=20)
        return grpc.StatusCode.OK, ""
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""


async def test_undecodable_bytes_are_invalid_argument_and_logged_once(data_dir: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "1", "--asr-model", "none", only=["core"])
    try:
        async with open_channel(mesh.addresses["core"], TEST_TOKEN) as channel:
            with caplog.at_level(logging.WARNING, logger="server.rpc.decoding"):
                for _ in range(20):
                    code, details = await _status(channel, "/peromesh.task.v1.TaskService/AddTask", [GARBAGE], False)
                    assert code == grpc.StatusCode.INVALID_ARGUMENT
                    assert "cannot decode the request message of /peromesh.task.v1.TaskService/AddTask" in details
            lines = [r for r in caplog.records if r.name == "server.rpc.decoding"]
            assert len(lines) == 1 and lines[0].exc_info is None  # one line, no traceback
            for requests in ([GARBAGE], [CONFIG, GARBAGE], [CONFIG, GARBAGE, CONFIG, CONFIG, CONFIG]):
                code, details = await _status(channel, "/peromesh.dialog.v1.DialogService/Converse", requests, True)
                assert (code, "cannot decode" in details) == (grpc.StatusCode.INVALID_ARGUMENT, True), requests
    finally:
        await mesh.stop()


def test_the_log_is_rate_limited_per_key(caplog: pytest.LogCaptureFixture) -> None:
    reports = RateLimitedLog(interval_s=3600)
    with caplog.at_level(logging.WARNING, logger="server.rpc.decoding"):
        for _ in range(5):
            reports.warning("/a", "bad a")
        reports.warning("/b", "bad b")
    assert [r.getMessage() for r in caplog.records] == ["bad a", "bad b"]
