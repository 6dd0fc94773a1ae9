"""The turn loop: user text → streamed answer text and speech, interruptible.

    THINKING → assistant_delta* (as tokens arrive) ─┬─ clauses → TTS → audio_begin, audio_chunk*
                                                     └─ assistant_final → audio_end → metrics → IDLE

Text and speech run concurrently: the model keeps generating while earlier
clauses are already being spoken. An interrupt is handled by the session
(see session.py): it closes the turn at the outbound gate, cancels this
task (the LLM stops within a token, the TTS call is cancelled), then calls
`finish_interrupted()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

from opentelemetry import propagate, trace

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.aio import cancel_and_wait
from server.dialog import events
from server.dialog.audio_chunks import PcmChunker
from server.dialog.deps import DialogDeps
from server.dialog.gate import OutboundGate
from server.dialog.metrics import TurnMetricsRecorder
from server.dialog.playout import PlayoutTracker
from server.dialog.segmenter import ClauseSegmenter
from server.dialog.speech import SpeechStream
from server.dialog.tool_port import ToolCallRecord, TurnRequest
from server.events import outbox
from server.llm.base import LlmRequest
from server.llm.prompt import build_messages
from server.llm.scripted import tokenize

log = logging.getLogger(__name__)
tracer = trace.get_tracer("peromesh.dialog")


@dataclass
class TurnInput:
    session_id: str
    turn_index: int
    text: str  # the user's words; empty for an announcement
    sample_rate: int
    voice: str
    speak: bool
    started: float = field(default_factory=time.perf_counter)
    device_id: str = ""
    announcement: str = ""  # server-initiated speech (e.g. a reminder): spoken instead of asking the model

    @property
    def turn_id(self) -> str:
        return f"{self.session_id}#{self.turn_index}"


class Turn:
    """One user turn and the answer to it."""

    def __init__(self, deps: DialogDeps, gate: OutboundGate, given: TurnInput) -> None:
        self.deps = deps
        self.gate = gate
        self.input = given
        self.id = given.turn_id
        self.text = ""
        self.tokens = 0
        self.chunks_sent = 0
        self.audio_begun = False
        self.finished = False
        self._user_write: asyncio.Task[None] | None = None
        self.playout = PlayoutTracker(given.sample_rate)
        self.clock = TurnMetricsRecorder(given.started)
        self.task: asyncio.Task[None] | None = None
        self._span = tracer.start_span("dialog.turn", attributes={"peromesh.correlation_id": self.id})
        self._log = logging.LoggerAdapter(log, {"corr": self.id})

    @property
    def active(self) -> bool:
        """Still producing: its terminal state_update has not been emitted yet."""
        return self.task is not None and not self.task.done() and not self.finished

    # -- the normal path ---------------------------------------------------
    async def run(self) -> None:
        self.gate.emit(events.state(self.id, pb.STATE_THINKING))
        with trace.use_span(self._span, end_on_exit=False):
            replies = await self._answer()
            speech = self._open_speech()
            audio = asyncio.create_task(self._pump_audio(speech), name=f"{self.id}:audio") if speech else None
            try:
                await self._generate(replies, speech)
                if audio:
                    await audio
            finally:
                if speech:
                    await speech.cancel()
                await cancel_and_wait(audio)
            if self._user_write:
                await self._user_write
        await self._complete()

    async def _answer(self) -> AsyncIterator[str]:
        """Where the reply comes from: an announcement, a deterministic command, or the model."""
        if self.input.announcement:
            return _spelled(self.input.announcement)
        history = await self.deps.history.context(self.input.session_id)  # before this turn is stored
        # Persisted concurrently: the disk write must not delay the first token.
        self._user_write = asyncio.create_task(self.deps.history.add_user(
            self.input.session_id, self.input.turn_index, self.input.text), name=f"{self.id}:store")
        if self.deps.tools is not None:
            handled = await self.deps.tools.intent(TurnRequest(self.input.session_id, self.input.device_id,
                                                               self.input.text))
            if handled is not None:
                self._report_calls(handled.calls)
                return _spelled(handled.reply)
        memories = await self.deps.recall(self.input.session_id, self.input.text)
        request = LlmRequest(build_messages(history, self.input.text, memories), self.input.session_id,
                             self.deps.max_new_tokens)
        follow = getattr(self.deps.tools, "follow", None)  # tool list on the prompt, <nit> scripts run (server/tools)
        if follow is not None:
            turn = TurnRequest(self.input.session_id, self.input.device_id, self.input.text)
            return cast(AsyncIterator[str], follow(turn, request, self._report_calls))
        return self.deps.llm.stream(request)

    def _report_calls(self, calls: list[ToolCallRecord]) -> None:
        for call in calls:
            self.gate.emit(pb.ConverseResponse(turn_id=self.id, tool_call=pb.ToolCall(
                call_id=call.call_id, name=call.name, arguments_json=call.arguments_json)))
            self.gate.emit(pb.ConverseResponse(turn_id=self.id, tool_result=pb.ToolResult(
                call_id=call.call_id, result_json=call.result_json, error=call.error)))

    async def _generate(self, stream: AsyncIterator[str], speech: SpeechStream | None) -> None:
        segmenter = ClauseSegmenter()
        first = tracer.start_span("llm.first_token")
        try:
            async for piece in stream:
                if not self.tokens:
                    first.end()
                    self.clock.first_delta()
                self.tokens += 1
                self.text += piece
                self.gate.emit(events.delta(self.id, piece))
                for clause in segmenter.feed(piece):
                    self._say(speech, clause)
        finally:
            if first.is_recording():
                first.end()
            await _aclose(stream)
        if rest := segmenter.flush():
            self._say(speech, rest)
        if speech:
            speech.finish()
        self.gate.emit(events.final(self.id, self.text, False, self.text))

    def _say(self, speech: SpeechStream | None, clause: str) -> None:
        if speech:
            self.playout.segment_started(speech.say(clause), clause)

    def _open_speech(self) -> SpeechStream | None:
        if not self.input.speak or self.deps.tts is None:
            return None
        return SpeechStream(self.deps.tts, self.input.sample_rate, self.input.voice, self.deps.tts_metadata)

    async def _pump_audio(self, speech: SpeechStream) -> None:
        chunker = PcmChunker()
        sizes: dict[int, int] = {}
        first_chunk = tracer.start_span("tts.first_chunk")
        try:
            async for response in speech.responses():
                kind = response.WhichOneof("kind")
                if kind == "chunk":
                    seq = response.chunk.segment_seq
                    sizes[seq] = sizes.get(seq, 0) + len(response.chunk.pcm)
                    for chunk in chunker.add(seq, response.chunk.pcm):
                        self._send_chunk(chunk.pcm, chunk.parts, first_chunk)
                elif kind == "segment_done":
                    seq = response.segment_done.segment_seq
                    self.playout.segment_finished(seq, sizes.get(seq, 0))
                    for chunk in chunker.end_segment():  # the flushed remainder ends the clause
                        self._send_chunk(chunk.pcm, chunk.parts, first_chunk, clause_end=True)
                elif kind == "end":
                    break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # TTS down or died: the turn goes on as text
            self._log.warning("speech failed: %s", exc)
            self.gate.emit(events.error(self.id, "UNAVAILABLE", f"speech synthesis failed: {_describe(exc)}"))
        finally:
            if first_chunk.is_recording():
                first_chunk.end()
        if self.audio_begun:
            self.gate.emit(events.audio_end(self.id, self.chunks_sent))

    def _send_chunk(self, pcm: bytes, parts: list[tuple[int, int]], first_span: trace.Span,
                    clause_end: bool = False) -> None:
        if not self.audio_begun:
            self.audio_begun = True
            first_span.end()
            self.clock.first_audio()
            self.gate.emit(events.audio_begin(self.id, self.input.sample_rate))
            self.gate.emit(events.state(self.id, pb.STATE_SPEAKING))
        self.playout.chunk_built(self.chunks_sent, parts)
        self.gate.emit(events.audio_chunk(self.id, self.chunks_sent, pcm, clause_end))
        self.chunks_sent += 1

    async def _complete(self) -> None:
        metrics = self.clock.finish(self.tokens)
        self.gate.emit(pb.ConverseResponse(turn_id=self.id, metrics=metrics))
        self.gate.emit(events.state(self.id, pb.STATE_IDLE))
        self._end_span(interrupted=False)
        await self._store_answer(False, self.text, metrics)

    # -- barge-in ----------------------------------------------------------
    async def finish_interrupted(self, t_interrupt_ms: float) -> None:
        """After the session closed and cancelled this turn: report and persist."""
        heard = self.playout.heard_text()
        self.gate.emit(events.final(self.id, self.text, True, heard))
        metrics = self.clock.finish(self.tokens, t_interrupt_ms=t_interrupt_ms)
        self.gate.emit(pb.ConverseResponse(turn_id=self.id, metrics=metrics))
        self.gate.emit(events.state(self.id, pb.STATE_INTERRUPTED))
        if self._user_write is not None:
            await asyncio.shield(self._user_write)  # the user row precedes the assistant row
        elif not self.input.announcement:  # cut before the user text was even queued for storage
            await self.deps.history.add_user(self.input.session_id, self.input.turn_index, self.input.text)
        await self._store_answer(True, heard, metrics)
        self._end_span(interrupted=True)

    async def _store_answer(self, interrupted: bool, heard: str, metrics: pb.TurnMetrics) -> None:
        """The answer row and its outbox events (memory write, analytics) commit together."""
        stats = {"session_id": self.input.session_id, "interrupted": interrupted, "tokens": self.tokens,
                 "chunks": self.chunks_sent, "t_first_delta_ms": metrics.t_first_delta_ms,
                 "t_first_audio_ms": metrics.t_first_audio_ms, "t_total_ms": metrics.t_total_ms,
                 "t_interrupt_ms": metrics.t_interrupt_ms}
        pending = [outbox.event(outbox.ANALYTICS_STREAM, "TurnFinished", self.id, stats)]
        if not self.input.announcement and heard.strip():
            carrier: dict[str, str] = {}  # the memory write joins this turn's trace, whenever it happens
            propagate.inject(carrier, context=trace.set_span_in_context(self._span))
            pending.append(outbox.event(outbox.LTM_STREAM, "LtmWriteRequested", self.id, {
                "session_id": self.input.session_id, "user_text": self.input.text, "assistant_text": heard,
                "trace": carrier}))
        await self.deps.history.add_assistant(self.input.session_id, self.input.turn_index, self.text,
                                              interrupted, heard, pending)
        self.deps.events_committed()

    def on_delivered(self, event: pb.ConverseResponse) -> None:
        if event.WhichOneof("event") == "audio_chunk":
            self.playout.chunk_delivered(event.audio_chunk.seq)

    def _end_span(self, interrupted: bool) -> None:
        self.finished = True
        self._span.set_attribute("peromesh.interrupted", interrupted)
        self._span.set_attribute("peromesh.tokens", self.tokens)
        self._span.end()


async def _spelled(text: str) -> AsyncIterator[str]:
    """A fixed reply streamed like model output, so the same delta/speech path serves it."""
    for token in tokenize(text):
        yield token


async def _aclose(stream: AsyncIterator[str]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def _describe(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    return str(details() if callable(details) else exc)[:300]
