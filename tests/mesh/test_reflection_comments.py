"""Reflection carries the contracts' comments, so `grpcurl describe` shows what proto/ says.

The expected comment is read from the .proto file itself, so the test follows the
contract's wording; the answers come from a real server built by serving.py, asked
with the reflection client stub (v1alpha, what grpcio-reflection serves) and with
grpcurl, and without a token: reflection stays open.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from peromesh.dialog.v1 import dialog_service_pb2_grpc as dpb_grpc
from server.rpc.reflection import SourceInfoGrafter, commented_files
from server.rpc.serving import GrpcServer, ServiceBinding, start_server

REPO = Path(__file__).resolve().parents[2]
DIALOG_FILE = "peromesh/dialog/v1/dialog_service.proto"
DIALOG_SERVICE = "peromesh.dialog.v1.DialogService"
SERVICE_FIELD = descriptor_pb2.FileDescriptorProto.SERVICE_FIELD_NUMBER


def leading_comment_in_source(declaration: str) -> str:
    """The `//` lines right above `declaration` in the dialog contract, as protoc reports them."""
    lines = (REPO / "proto" / DIALOG_FILE).read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(declaration))
    comment: list[str] = []
    while at > 0 and lines[at - 1].lstrip().startswith("//"):
        at -= 1
        comment.insert(0, lines[at].lstrip()[2:] + "\n")
    assert comment, f"{DIALOG_FILE} has no // comment above {declaration!r}"
    return "".join(comment)


@pytest.fixture
async def server() -> AsyncIterator[GrpcServer]:
    binding = ServiceBinding(DIALOG_SERVICE, dpb_grpc.add_DialogServiceServicer_to_server,
                             dpb_grpc.DialogServiceServicer())
    started = await start_server("reflection-test", [binding], token="reflection-test-token")
    try:
        yield started
    finally:
        await started.stop(grace_s=0)


async def reflected_files(address: str, symbol: str) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)
        responses = [r async for r in stub.ServerReflectionInfo(iter([request]))]
    assert len(responses) == 1 and responses[0].HasField("file_descriptor_response"), responses
    files = (descriptor_pb2.FileDescriptorProto.FromString(raw)
             for raw in responses[0].file_descriptor_response.file_descriptor_proto)
    return {f.name: f for f in files}


async def test_reflection_answers_the_dialog_file_with_its_comments(server: GrpcServer) -> None:
    files = await reflected_files(server.address, DIALOG_SERVICE)
    assert {DIALOG_FILE, "google/protobuf/timestamp.proto"} <= files.keys()
    dialog = files[DIALOG_FILE]
    index = [s.name for s in dialog.service].index("DialogService")
    comments = {tuple(loc.path): loc.leading_comments for loc in dialog.source_code_info.location}
    assert comments.get((SERVICE_FIELD, index)) == leading_comment_in_source("service DialogService")


async def test_grpcurl_describe_shows_the_comment(server: GrpcServer) -> None:
    grpcurl = Path(sys.executable).parent / "grpcurl"
    done = await asyncio.create_subprocess_exec(
        str(grpcurl), "-plaintext", server.address, "describe", DIALOG_SERVICE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(done.communicate(), timeout=60)
    assert done.returncode == 0, err.decode()
    expected = leading_comment_in_source("service DialogService").strip()
    assert expected in out.decode(), out.decode()


def test_a_stale_descriptor_set_puts_no_comment_on_the_wrong_element() -> None:
    stored = commented_files()[DIALOG_FILE]
    served = descriptor_pb2.FileDescriptorProto()
    served.CopyFrom(stored)
    served.ClearField("source_code_info")
    assert descriptor_pb2.FileDescriptorProto.FromString(
        SourceInfoGrafter({DIALOG_FILE: stored}).graft(served.SerializeToString())).source_code_info == \
        stored.source_code_info
    del served.message_type[0]  # the stubs changed since the set was written
    raw = served.SerializeToString()
    assert SourceInfoGrafter({DIALOG_FILE: stored}).graft(raw) == raw
