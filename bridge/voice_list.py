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
MAX_READS at once, with a deadline of READ_TIMEOUT_S (bridge/master_reads.py).
Cancellation: closing the connection cancels its reads (TaskOwner), which
cancels their calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from peromesh.tts.v1 import tts_service_pb2 as tpb
from peromesh.tts.v1 import tts_service_pb2_grpc as tpb_grpc

from .master_reads import MasterRead, Spawn
from .outbound import Outbound

ACTION = "voices:list"
MAX_READS = 2
READ_TIMEOUT_S = 5.0
MAX_LANGUAGES = 8
_LANGUAGE = re.compile(r"[A-Za-z]{2,8}")  # a primary language subtag, as the TTS router names languages


class VoiceList(MasterRead[tpb.ListVoicesRequest, tpb.ListVoicesResponse]):
    ACTION = ACTION
    MAX_READS = MAX_READS
    TASK_NAME = "voice-list"
    BUSY = f"{MAX_READS} voice lists are already being read"

    def __init__(self, stub: tpb_grpc.TtsServiceStub | None, metadata: tuple[tuple[str, str], ...],
                 out: Callable[[Outbound], None], spawn: Spawn) -> None:
        super().__init__(metadata, out, spawn)
        self._stub = stub

    def _request(self, params: Any) -> tpb.ListVoicesRequest:
        return tpb.ListVoicesRequest(languages=parse_languages(params.get("languages", "")))

    def _refusal(self) -> tuple[str, str] | None:
        if self._stub is None:
            return "UNAVAILABLE", (f"{ACTION}: this bridge knows no TTS server (--tts-addr); "
                                   "answers are spoken in the automatic voice")
        return None

    async def _call(self, request: tpb.ListVoicesRequest) -> tpb.ListVoicesResponse:
        assert self._stub is not None  # _refusal() answered UNAVAILABLE before any read started
        response: tpb.ListVoicesResponse = await self._stub.ListVoices(request, metadata=self._metadata,
                                                                       timeout=READ_TIMEOUT_S)
        return response

    def _data(self, response: tpb.ListVoicesResponse) -> dict[str, Any]:
        return {"voices": [voice_data(v) for v in response.voices]}


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
