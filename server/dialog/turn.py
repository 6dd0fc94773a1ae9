"""The turn loop: user text → streamed answer text and speech, interruptible.

    THINKING → assistant_delta* (as tokens arrive) ─┬─ clauses → TTS → audio_begin, audio_chunk*
                                                     └─ (answer committed) assistant_final → audio_end → metrics → IDLE

Text and speech run concurrently: the model keeps generating while earlier
clauses are already being spoken. An interrupt is handled by the session
(see session.py): it closes the turn at the outbound gate, cancels this
task (the LLM stops within a token, the TTS call is cancelled), then calls
`finish_interrupted()`.

Commit before you tell: the answer row (text, heard text so far) and its
long-term-memory event commit before `assistant_final` is emitted, so an
answer the client has seen is never missing from history after a crash;
when the turn ends, what the user really heard is written onto that row,
together with the turn's analytics event. A turn that fails marks its
question abandoned. Failpoints `turn.before_store` and `turn.after_store`
sit on either side of that commit (server/failpoints.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from opentelemetry import propagate, trace

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.aio import cancel_and_wait
from server.dialog import events
from server.dialog.audio_chunks import PcmChunker
from server.dialog.deps import DialogDeps
from server.dialog.gate import OutboundGate
from server.dialog.metrics import TurnMetricsRecorder
from server.dialog.playout import PlayoutTracker
from server.dialog.resume import is_continue_request, unheard_remainder
from server.dialog.segmenter import ClauseSegmenter
from server.dialog.speech import SpeechStream
from server.dialog.tool_port import ToolCallRecord, TurnRequest
from server.events import outbox
from server.failpoints import failpoint
from server.llm.base import LlmRequest
from server.llm.prompt import build_messages
from server.llm.tokens import tokenize

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
        self._answer_write: asyncio.Task[None] | None = None  # the answer row's commit, once started
        self._closing: asyncio.Task[None] | None = None  # the completed turn's last commit, once started
        self._cut_late = False  # corrected to interrupted after it had completed (still playing)
        self._metrics = pb.TurnMetrics()
        self.playout = PlayoutTracker(given.sample_rate)
        self.clock = TurnMetricsRecorder(given.started)
        self.task: asyncio.Task[None] | None = None
        self._playing = asyncio.Event()  # cleared while speech of the user may be a barge-in
        self._playing.set()
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
                await self._answered()
                if audio:
                    await audio
            finally:
                # The audio task first, before anything yields: once the turn is being torn down,
                # it must not get to emit another chunk or a SPEAKING.
                await cancel_and_wait(audio)
                if speech:
                    await speech.cancel()
        await self._complete()

    async def _answer(self) -> AsyncIterator[str]:
        """Where the reply comes from: an announcement, a deterministic command, or the model."""
        if self.input.announcement:
            return _spelled(self.input.announcement)
        # Recall runs while the turn reads its history and checks whether it needs the model at all
        # (a "continue", a command): on the model's path its time then overlaps those steps
        # instead of following them.
        recall: asyncio.Future[list[str]] = asyncio.ensure_future(
            self.deps.recall(self.input.session_id, self.input.text))
        try:
            history = await self.deps.history.context(self.input.session_id)  # before this turn is stored
            # Persisted concurrently: the disk write must not delay the first token.
            self._user_write = asyncio.create_task(self.deps.history.add_user(
                self.input.session_id, self.input.turn_index, self.input.text), name=f"{self.id}:store")
            if remainder := await self._unheard_remainder():
                return _spelled(remainder)  # as I was saying: no regeneration
            if self.deps.tools is not None:
                handled = await self.deps.tools.intent(TurnRequest(self.input.session_id, self.input.device_id,
                                                                   self.input.text))
                if handled is not None:
                    self._report_calls(handled.calls)
                    return _spelled(handled.reply)
            memories = await recall
        finally:
            if not recall.done():
                recall.cancel()  # not needed (a command, a remainder) or the turn was cancelled: no orphan
            elif not recall.cancelled():
                recall.exception()  # a recall that failed on a path not using it is no unretrieved error
        request = LlmRequest(build_messages(history, self.input.text, memories), self.input.session_id,
                             self.deps.max_new_tokens)
        if self.deps.tools is not None:  # tool list on the prompt, <nit> scripts run (server/tools)
            turn = TurnRequest(self.input.session_id, self.input.device_id, self.input.text)
            return self.deps.tools.follow(turn, request, self._report_calls)
        return self.deps.llm.stream(request)

    async def _unheard_remainder(self) -> str:
        """What the user did not hear of the last answer, when they only ask to go on (resume.py)."""
        if not is_continue_request(self.input.text):
            return ""
        last = await self.deps.history.last_answer(self.input.session_id)
        return unheard_remainder(last[0], last[2]) if last is not None and last[1] else ""

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
                await self.gate.send(events.delta(self.id, piece))
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

    async def _answered(self) -> None:
        """Commit the answer, then tell the client it is final."""
        heard_so_far = self.playout.heard_text() if self.input.speak and self.deps.tts is not None else self.text
        self._answer_write = asyncio.create_task(self._store_answer(heard_so_far), name=f"{self.id}:answer")
        await asyncio.shield(self._answer_write)  # an interrupt mid-commit must not tear the commit
        failpoint("turn.after_store")
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
        voices: list[str] = []  # who spoke, in the order first heard (AudioEnd.voices)
        first_chunk = tracer.start_span("tts.first_chunk")
        try:
            async for response in speech.responses():
                kind = response.WhichOneof("kind")
                if kind == "chunk":
                    if (voice := response.chunk.voice_name) and voice not in voices:
                        voices.append(voice)
                    seq = response.chunk.segment_seq
                    sizes[seq] = sizes.get(seq, 0) + len(response.chunk.pcm)
                    for chunk in chunker.add(seq, response.chunk.pcm):
                        await self._send_chunk(chunk.pcm, chunk.parts, first_chunk)
                elif kind == "segment_done":
                    seq = response.segment_done.segment_seq
                    self.playout.segment_finished(seq, sizes.get(seq, 0))
                    for chunk in chunker.end_segment():  # the flushed remainder ends the clause
                        await self._send_chunk(chunk.pcm, chunk.parts, first_chunk, clause_end=True)
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
            self.gate.emit(events.audio_end(self.id, self.chunks_sent, voices))

    async def _send_chunk(self, pcm: bytes, parts: list[tuple[int, int]], first_span: trace.Span,
                    clause_end: bool = False) -> None:
        await self._playing.wait()  # paused: nothing more is sent until resumed (or cancelled)
        if not self.audio_begun:
            self.audio_begun = True
            first_span.end()
            self.clock.first_audio()
            self.gate.emit(events.audio_begin(self.id, self.input.sample_rate))
            self.gate.emit(events.state(self.id, pb.STATE_SPEAKING))
        self.playout.chunk_built(self.chunks_sent, parts)
        await self.gate.send(events.audio_chunk(self.id, self.chunks_sent, pcm, clause_end))
        self.chunks_sent += 1

    async def _complete(self) -> None:
        """Everything of the turn is committed by the time the client sees IDLE."""
        self._metrics = metrics = self.clock.finish(self.tokens)
        self._closing = asyncio.create_task(self._store_completion(metrics), name=f"{self.id}:complete")
        await asyncio.shield(self._closing)
        self._report_completed(metrics)

    async def _store_completion(self, metrics: pb.TurnMetrics) -> None:
        await self.deps.history.correct_assistant(self.input.session_id, self.input.turn_index, False,
                                                  self.text, [self._finished_event(False, metrics)])
        self.deps.events_committed()

    def _report_completed(self, metrics: pb.TurnMetrics) -> None:
        self.gate.emit(pb.ConverseResponse(turn_id=self.id, metrics=metrics))
        self.gate.emit(events.state(self.id, pb.STATE_IDLE))
        self._end_span(interrupted=False)

    # -- barge-in ----------------------------------------------------------
    def pause(self) -> None:
        """Hold the answer's audio (the text goes on): the user may be barging in (barge_in.py)."""
        self._playing.clear()

    def resume(self) -> None:
        """It was not a barge-in: audio goes on from the chunk it held."""
        self._playing.set()

    @property
    def paused(self) -> bool:
        return not self._playing.is_set()

    async def finish_interrupted(self, t_interrupt_ms: float, played_ms: float | None = None) -> None:
        """After the session closed and cancelled this turn: persist, then report.

        `played_ms`: how much of its audio the client had played (Interrupt.played_ms), if it said."""
        if self._closing is not None:  # the completed turn was being committed: let that commit finish,
            with contextlib.suppress(Exception):  # then correct it, for the client was still playing it
                await asyncio.shield(self._closing)
            if not await self._correct_as_cut(t_interrupt_ms, played_ms):  # all of it had been heard
                self._report_completed(self._metrics)
            return
        heard = self.playout.heard_text(played_ms)
        metrics = self.clock.finish(self.tokens, t_interrupt_ms=t_interrupt_ms)
        finished = self._finished_event(True, metrics)
        if await self._answer_stored():  # its final went out (or was about to): correct what was heard
            await self.deps.history.correct_assistant(self.input.session_id, self.input.turn_index, True,
                                                      heard, [finished])
        else:
            if self._user_write is not None:
                await asyncio.shield(self._user_write)  # the user row precedes the assistant row
            elif not self.input.announcement:  # cut before the user text was even queued for storage
                await self.deps.history.add_user(self.input.session_id, self.input.turn_index, self.input.text)
            await self.deps.history.add_assistant(self.input.session_id, self.input.turn_index, self.text, True,
                                                  heard, [*self._memory_event(heard), finished])
        self.deps.events_committed()
        self._report_interrupted(heard, metrics)

    def _report_interrupted(self, heard: str, metrics: pb.TurnMetrics) -> None:
        self.gate.emit(events.final(self.id, self.text, True, heard))
        self.gate.emit(pb.ConverseResponse(turn_id=self.id, metrics=metrics))
        self.gate.emit(events.state(self.id, pb.STATE_INTERRUPTED))
        if self._span.is_recording():  # a late cut: the completed turn's span has ended already
            self._end_span(interrupted=True)

    def still_playing(self, played_ms: float | None) -> bool:
        """A completed spoken turn the client says it had not finished playing (and not yet cut)."""
        return (played_ms is not None and self._closing is not None and self._closing.done()
                and not self._cut_late and not self._all_heard(played_ms))

    async def cut_playout(self, t_interrupt_ms: float, played_ms: float) -> None:
        """The person stopped a completed answer that was still playing: store what was heard."""
        await self._correct_as_cut(t_interrupt_ms, played_ms)

    def _spoken(self) -> bool:
        return self.input.speak and self.deps.tts is not None

    def _all_heard(self, played_ms: float | None) -> bool:
        return not self._spoken() or self.playout.all_heard(played_ms)

    async def _correct_as_cut(self, t_interrupt_ms: float, played_ms: float | None) -> bool:
        """Correct the committed, completed answer to interrupted with what was heard, and report it;
        False (nothing done) when all of it had been heard."""
        if self._all_heard(played_ms):
            return False
        heard = self.playout.heard_text(played_ms)
        self._cut_late = True
        await self.deps.history.correct_assistant(self.input.session_id, self.input.turn_index, True, heard, [])
        cut = pb.TurnMetrics()
        cut.CopyFrom(self._metrics)
        cut.t_interrupt_ms = t_interrupt_ms
        self._report_interrupted(heard, cut)
        return True

    async def abandon(self) -> None:
        """The turn failed before its answer was stored: its question will never be answered."""
        if self.input.announcement or await self._answer_stored():
            return
        if self._user_write is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._user_write)
        await self.deps.history.abandon(self.input.session_id, self.input.turn_index)

    async def _answer_stored(self) -> bool:
        if self._answer_write is None:
            return False
        with contextlib.suppress(Exception):
            await asyncio.shield(self._answer_write)
        return self._answer_write.done() and not self._answer_write.cancelled() \
            and self._answer_write.exception() is None

    async def _store_answer(self, heard: str) -> None:
        """The answer row and its memory event commit together, after the user row."""
        if self._user_write is not None:
            await self._user_write
        failpoint("turn.before_store")
        await self.deps.history.add_assistant(self.input.session_id, self.input.turn_index, self.text, False,
                                              heard, self._memory_event(self.text))
        self.deps.events_committed()

    def _memory_event(self, said: str) -> list[outbox.OutboxEvent]:
        """What long-term memory should learn from this turn (nothing for an announcement or silence)."""
        if self.input.announcement or not said.strip():
            return []
        carrier: dict[str, str] = {}  # the memory write joins this turn's trace, whenever it happens
        propagate.inject(carrier, context=trace.set_span_in_context(self._span))
        return [outbox.event(outbox.LTM_STREAM, "LtmWriteRequested", self.id, {
            "session_id": self.input.session_id, "user_text": self.input.text, "assistant_text": said,
            "trace": carrier})]

    def _finished_event(self, interrupted: bool, metrics: pb.TurnMetrics) -> outbox.OutboxEvent:
        """The turn's analytics record, written when the turn has ended (it carries the whole turn's timing)."""
        return outbox.event(outbox.ANALYTICS_STREAM, "TurnFinished", self.id, {
            "session_id": self.input.session_id, "interrupted": interrupted, "tokens": self.tokens,
            "chunks": self.chunks_sent, "t_first_delta_ms": metrics.t_first_delta_ms,
            "t_first_audio_ms": metrics.t_first_audio_ms, "t_total_ms": metrics.t_total_ms,
            "t_interrupt_ms": metrics.t_interrupt_ms})

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
