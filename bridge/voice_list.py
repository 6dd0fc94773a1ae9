"""`voices:list`: the voices a device may choose for its answers (TtsService.ListVoices).

The console's voice menu must offer what the TTS server can actually speak, so
the bridge asks it rather than shipping a list of its own. The bridge answers
this action itself, like `history:list`: the voices are the TTS server's, not
the hub's. A chosen name goes back as `hello.voice` (a reconnect), becomes the
dialog's SessionConfig.voice and the TTS stream's SynthesisConfig.voice; the
TTS server speaks with it the parts of an answer in its languages and keeps
the best voice per language for the rest.

Request params (optional): `languages`, a comma list ("en,zh"): only voices
that speak one of them. The answer's data is JSON: `{"voices": [{name,
engine, languages, display_name, neural}]}`, the TTS server's preferred
voices first. A bridge that knows no TTS server answers UNAVAILABLE (the
console then offers only "automatic"); a TTS failure answers with its gRPC
code name.

Each read is a task of the connection (never in the client reader), at most
MAX_READS at once, with a deadline of READ_TIMEOUT_S. Cancellation: closing
the connection cancels its reads (TaskOwner), which cancels their calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import grpc

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.tts.v1 import tts_service_pb2 as tpb
from peromesh.tts.v1 import tts_service_pb2_grpc as tpb_grpc
from server.wire import envelopes as env

from .outbound import Outbound

ACTION = "voices:list"
MAX_READS = 2
READ_TIMEOUT_S = 5.0
MAX_LANGUAGES = 8
_LANGUAGE = re.compile(r"[A-Za-z]{2,8}")  # a primary language subtag, as the TTS router names languages


class VoiceList:
    def __init__(self, stub: tpb_grpc.TtsServiceStub | None, metadata: tuple[tuple[str, str], ...],
                 out: Callable[[Outbound], None],
                 spawn: Callable[[Coroutine[Any, Any, None], str], object]) -> None:
        self._stub = stub
        self._metadata = metadata
        self._out = out
        self._spawn = spawn
        self._running = 0

    @staticmethod
    def wants(envelope: gw.Envelope) -> bool:
        return (envelope.target_id in (env.MASTER, "") and envelope.HasField("request")
                and envelope.request.action_name == ACTION)

    def handle(self, envelope: gw.Envelope) -> None:
        """Check the request and start the read; the answer comes when the TTS server answered."""
        try:
            languages = parse_languages(envelope.request.params.get("languages", ""))
        except ValueError as exc:
            self._error(envelope, "INVALID_ARGUMENT", str(exc))
            return
        if self._stub is None:
            self._error(envelope, "UNAVAILABLE", f"{ACTION}: this bridge knows no TTS server (--tts-addr); "
                                                 "answers are spoken in the automatic voice")
            return
        if self._running >= MAX_READS:
            self._error(envelope, "RESOURCE_EXHAUSTED", f"{MAX_READS} voice lists are already being read")
            return
        self._running += 1
        self._spawn(self._read(self._stub, envelope, languages), "voice-list")

    async def _read(self, stub: tpb_grpc.TtsServiceStub, envelope: gw.Envelope, languages: list[str]) -> None:
        try:
            response = await stub.ListVoices(tpb.ListVoicesRequest(languages=languages), metadata=self._metadata,
                                             timeout=READ_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            self._error(envelope, exc.code().name, f"{ACTION}: {exc.details() or exc.code().name}")
            return
        finally:
            self._running -= 1
        answer = env.ok(envelope, json.dumps({"voices": [voice_data(v) for v in response.voices]},
                                             ensure_ascii=False))
        self._out(Outbound(answer, size=answer.ByteSize()))

    def _error(self, envelope: gw.Envelope, code: str, message: str) -> None:
        self._out(Outbound(env.error(envelope.id, envelope.source_id, code, message, trace_id=envelope.trace_id)))


def parse_languages(raw: str) -> list[str]:
    """"en,zh" → ["en", "zh"]; "" → [] (every voice)."""
    languages = [part.strip().lower() for part in raw.split(",") if part.strip()]
    if len(languages) > MAX_LANGUAGES or not all(_LANGUAGE.fullmatch(lang) for lang in languages):
        raise ValueError(f"{ACTION}: languages must be up to {MAX_LANGUAGES} comma-separated language codes "
                         f"such as en,zh (got {raw[:40]!r})")
    return languages


def voice_data(voice: tpb.Voice) -> dict[str, Any]:
    return {"name": voice.name, "engine": voice.engine, "languages": list(voice.languages),
            "display_name": voice.display_name, "neural": voice.neural}
