"""Server reflection that carries the contracts' comments.

grpcio-reflection answers from the descriptor pool, and the Python stubs strip
`source_code_info` (and `CopyToProto` would drop it anyway), so `grpcurl describe`,
`buf curl` and Postman showed the schema without a word of what the .proto files
say. scripts/gen_proto.py also writes `peromesh/descriptors.binpb`, the contracts as
a FileDescriptorSet with source info; this module serves the stock reflection and
puts each file's comments back into its answer.

Comments are attached only to a file whose shape (the descriptor without comments
and json names) is exactly what the running stubs compiled: locations are paths of
element indices, so a stale descriptor set would put comments on the wrong element.
Such a file is served as before, without comments, with one warning.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

log = logging.getLogger(__name__)

DESCRIPTOR_SET = "descriptors.binpb"  # in the generated `peromesh` package (scripts/gen_proto.py)


@cache
def commented_files() -> Mapping[str, descriptor_pb2.FileDescriptorProto]:
    """The contracts with their comments, by file name; empty (with a warning) when the set is missing."""
    try:
        data = resources.files("peromesh").joinpath(DESCRIPTOR_SET).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError):
        log.warning("reflection: no peromesh/%s; describe shows no comments (run scripts/gen_proto.py)",
                    DESCRIPTOR_SET)
        return {}
    return {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(data).file}


def _clear_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    for message in messages:
        for field in (*message.field, *message.extension):
            field.ClearField("json_name")
        _clear_json_names(message.nested_type)


def _shape(file: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """The file without what differs between protoc's set and the pool's copy: comments, json names."""
    shape = descriptor_pb2.FileDescriptorProto()
    shape.CopyFrom(file)
    shape.ClearField("source_code_info")
    for extension in shape.extension:
        extension.ClearField("json_name")
    _clear_json_names(shape.message_type)
    return shape


class SourceInfoGrafter:
    """Puts the stored comments into served FileDescriptorProtos whose shape matches."""

    def __init__(self, commented: Mapping[str, descriptor_pb2.FileDescriptorProto]) -> None:
        self._commented = commented
        self._verdicts: dict[str, bool] = {}  # file name -> stored copy matches the served one

    def graft(self, serialized: bytes) -> bytes:
        """One serialized FileDescriptorProto, with its comments when they are known and fit."""
        served = descriptor_pb2.FileDescriptorProto.FromString(serialized)
        stored = self._commented.get(served.name)
        if stored is None or served.HasField("source_code_info") or not self._fits(served, stored):
            return serialized
        served.source_code_info.CopyFrom(stored.source_code_info)
        return served.SerializeToString()

    def _fits(self, served: descriptor_pb2.FileDescriptorProto, stored: descriptor_pb2.FileDescriptorProto) -> bool:
        verdict = self._verdicts.get(served.name)
        if verdict is None:
            verdict = self._verdicts[served.name] = _shape(served) == _shape(stored)
            if not verdict:
                log.warning("reflection: %s in peromesh/%s differs from the stubs; served without comments "
                            "(run scripts/gen_proto.py)", served.name, DESCRIPTOR_SET)
        return verdict


class CommentedReflectionServicer:
    """grpcio-reflection's asyncio servicer, its file answers given back their comments.

    Wraps rather than subclasses: the lookups (by file, symbol, extension) stay the
    library's; only the FileDescriptorProtos on the way out are touched.
    """

    def __init__(self, service_names: Iterable[str], grafter: SourceInfoGrafter) -> None:
        self._inner = reflection.aio.ReflectionServicer(list(service_names))
        self._grafter = grafter

    async def ServerReflectionInfo(
        self, request_iterator: AsyncIterable[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        async for response in self._inner.ServerReflectionInfo(request_iterator, context):
            if response.HasField("file_descriptor_response"):
                protos = response.file_descriptor_response.file_descriptor_proto
                protos[:] = [self._grafter.graft(p) for p in protos]
            yield response


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serve reflection (v1alpha, the one grpcio-reflection has) for these services and itself."""
    names = [*service_names, reflection.SERVICE_NAME]
    servicer = CommentedReflectionServicer(names, SourceInfoGrafter(commented_files()))
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
