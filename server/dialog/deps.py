"""What the dialog core depends on, gathered in one object the component builds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from peromesh.tts.v1 import tts_service_pb2_grpc as tts_grpc
from server.asr.speech_input import SpeechLoader
from server.dialog.barge_in import BargeInSettings
from server.dialog.echo import EchoSettings
from server.dialog.history import HistoryStore
from server.dialog.tool_port import ToolPort
from server.llm.base import LlmProvider

Recall = Callable[[str, str], Awaitable[list[str]]]  # (session_id, user text) → memory lines


async def _no_recall(_session_id: str, _text: str) -> list[str]:
    return []


def _nothing() -> None:
    return None


@dataclass
class DialogDeps:
    llm: LlmProvider
    history: HistoryStore
    tts: tts_grpc.TtsServiceStub | None  # None: text only
    tts_metadata: Sequence[tuple[str, str]] = ()
    max_new_tokens: int = 200
    max_text_chars: int = 8000
    outbound_capacity: int = 256  # events queued per stream before producers wait (server/dialog/gate.py)
    recall: Recall = field(default=_no_recall)
    events_committed: Callable[[], None] = field(default=_nothing)  # wakes the outbox relay
    tools: ToolPort | None = None
    asr: SpeechLoader | None = None  # None: user_audio is refused (UNIMPLEMENTED)
    barge_in: BargeInSettings = field(default_factory=BargeInSettings)  # speech during playback
    echo: EchoSettings = field(default_factory=EchoSettings)  # our own voice coming back
