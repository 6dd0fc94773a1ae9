"""The TTS server as a `peromesh serve` component."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from peromesh.server.mesh.component import MeshContext
from peromesh.server.rpc.serving import GrpcServer, ServiceBinding, start_server
from peromesh.server.tts.espeak import EspeakEngine
from peromesh.server.tts.router import EngineRouter
from peromesh.server.tts.servicer import TtsServicer
from peromesh.tts.v1 import tts_service_pb2_grpc as pb_grpc


def build_router() -> EngineRouter:
    """Engines in preference order; espeak-ng last, as the fallback for everything."""
    return EngineRouter([EspeakEngine()])


@dataclass
class RunningTts:
    server: GrpcServer
    router: EngineRouter

    @property
    def address(self) -> str:
        return self.server.address

    async def stop(self) -> None:
        await self.server.stop()


class TtsComponent:
    name = "tts"
    default_port = 50052
    description = "speech synthesis (TtsService)"

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        pass

    async def start(self, ctx: MeshContext) -> RunningTts:
        router = build_router()
        binding = ServiceBinding("peromesh.tts.v1.TtsService", pb_grpc.add_TtsServiceServicer_to_server,
                                 TtsServicer(router))
        server = await start_server("tts", [binding], ctx.settings.host, ctx.port("tts"), ctx.token)
        return RunningTts(server, router)
