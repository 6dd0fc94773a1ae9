"""The guard window in the session: speech starting just after our own speech began playing is
judged without pausing the answer (no LISTENING, audio not held); later speech pauses it as before.

Driven through the session's recognizer callback with the events a recognizer would raise
(`SpeechStarted` at a stream time, a partial transcript), so it needs no Whisper and no clock
but the microphone's own: the session's echo gate is fed audio of known lengths.
"""

from __future__ import annotations

from typing import Any

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.asr.streaming import PartialTranscript, SpeechStarted
from server.dialog.deps import DialogDeps
from server.dialog.echo import EchoSettings
from server.dialog.session import ConverseSession


class SpeakingTurn:
    """What the session asks of a running turn whose audio is playing."""

    id = "guard#1"
    active = True
    audio_begun = True
    chunks_sent = 3
    task = None

    def __init__(self) -> None:
        self.paused = False
        self.interrupted = False

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def on_delivered(self, _event: pb.ConverseResponse) -> None:
        pass

    async def finish_interrupted(self, _t_interrupt_ms: float, _played_ms: float | None = None) -> None:
        self.interrupted = True
        self.active = False


def speaking_session(turn: SpeakingTurn) -> ConverseSession:
    deps: Any = DialogDeps(llm=None, history=None, tts=None, echo=EchoSettings(guard_s=0.3))  # type: ignore[arg-type]
    session = ConverseSession(deps, counter=None)  # type: ignore[arg-type]
    session.turn = turn  # type: ignore[assignment]
    session._echo.heard(b"\0\0" * 16000, 16000)  # 1 s of microphone audio, then our speech starts
    session._echo.sent(b"\0\0" * 48000, 24000)  # 2 s of it, playing from 1.0 s
    return session


async def emitted(session: ConverseSession) -> list[pb.ConverseResponse]:
    session.gate.end()
    return [event async for event in session.gate.events()]


async def test_speech_inside_the_guard_window_is_judged_without_pausing_the_answer() -> None:
    turn = SpeakingTurn()
    session = speaking_session(turn)
    try:
        await session._on_speech(SpeechStarted(utterance=1, at_s=1.1))
        assert not turn.paused
        await session._on_speech(PartialTranscript(utterance=1, text="Stop."))  # real words still barge in
        assert turn.interrupted
        states = [e.state_update.state for e in await emitted(session) if e.HasField("state_update")]
        assert pb.STATE_LISTENING not in states
    finally:
        await session.close()


async def test_speech_after_the_guard_window_pauses_the_answer() -> None:
    turn = SpeakingTurn()
    session = speaking_session(turn)
    try:
        await session._on_speech(SpeechStarted(utterance=1, at_s=1.4))
        assert turn.paused and not turn.interrupted
        states = [e.state_update.state for e in await emitted(session) if e.HasField("state_update")]
        assert states == [pb.STATE_LISTENING]
    finally:
        await session.close()
