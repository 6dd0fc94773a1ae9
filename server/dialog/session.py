"""One Converse stream: reads client messages and runs turns, with barge-in.

Client messages are read by their own task (the priority lane): an
interrupt is acted on while a turn is still producing, never queued behind
its audio. Teardown order on interrupt is fixed: close the turn at the gate →
emit audio_cancel → cancel the turn task (LLM stops, TTS call cancelled) →
report and persist what was said and heard.

Backpressure: before taking the next request the reader waits until the
outbound gate is below capacity (see gate.py), so a client that sends but
does not read cannot grow the queue; an interrupt of the running turn is
taken at once, because it is what empties the queue. After the client
half-closes, speech it already ended (`is_end`) is still recognised and
answered before the stream ends, just like text.

Speech during playback pauses before it interrupts (barge_in.py): the
answer's audio is held at the turn and `state_update(LISTENING)` tells the
client to pause its player; the utterance is then judged on its words and
length. Real speech barges in (audio_cancel, as an interrupt); a backchannel,
a cough or noise resumes the answer where it paused, announced by
`state_update(SPEAKING)` of the turn, and starts no turn of its own.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.aio import TaskOwner, cancel_and_wait
from server.asr.speech_input import SpeechInput, SpeechUnavailable
from server.asr.streaming import PartialTranscript, RecognitionEvent, SpeechStarted
from server.audio import pcm
from server.dialog import events
from server.dialog.barge_in import BargeInJudge, Verdict, is_backchannel
from server.dialog.deps import DialogDeps
from server.dialog.echo import EchoGate
from server.dialog.gate import OutboundGate
from server.dialog.playout_clock import ClientPlayout
from server.dialog.turn import Turn, TurnInput
from server.dialog.turn_counter import TurnCounter

log = logging.getLogger(__name__)
_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
DEFAULT_RATE_HZ = 24000
MAX_PENDING_ANNOUNCEMENTS = 8


class ConverseSession:
    def __init__(self, deps: DialogDeps, counter: TurnCounter) -> None:
        self.deps = deps
        self.counter = counter
        self.gate = OutboundGate(on_delivered=self._delivered, capacity=deps.outbound_capacity)
        self.config: pb.SessionConfig | None = None
        self.session_id = ""
        self.turn: Turn | None = None
        self._tasks = TaskOwner("converse")
        self._announcements: list[str] = []  # waiting for the running turn to end
        self.speech: SpeechInput | None = None
        self._playout = ClientPlayout(DEFAULT_RATE_HZ)
        self._judge: BargeInJudge | None = None  # speech heard while the answer plays, being judged
        self._paused_playout = ""  # the completed turn whose client playout the judged speech paused
        self._judged_utterance = -1  # the recognizer's utterance that started during playback
        self._echoed = False  # ... was found to be our own speech coming back
        self._judged_onset_s = 0.0  # ... its onset, on the microphone clock (echo.py)
        self._echo = EchoGate(deps.echo)

    # -- reading -----------------------------------------------------------
    async def read(self, requests: AsyncIterator[pb.ConverseRequest]) -> None:
        """Handle client messages until the client half-closes, then finish the turn and end."""
        try:
            async for request in requests:
                if not (request.WhichOneof("kind") == "interrupt" and self.turn is not None and self.turn.active):
                    await self.gate.writable()
                await self._handle(request, time.perf_counter())
            if self.speech is not None:
                await self.speech.finish()  # an utterance ended with is_end is still answered
            if self.turn and self.turn.task:
                await self.turn.task
        finally:
            self.gate.end()

    async def _handle(self, request: pb.ConverseRequest, received: float) -> None:
        kind = request.WhichOneof("kind")
        if kind is None:
            self._error("", "INVALID_ARGUMENT", "empty ConverseRequest: set one of config, user_text, "
                                                "user_audio, interrupt")
        elif kind == "config":
            await self._configure(request.config)
        elif self.config is None:
            self._error("", "FAILED_PRECONDITION", f"`{kind}` before `config`: send config first")
        elif kind == "user_text":
            await self._user_text(request.user_text.text, received)
        elif kind == "interrupt":
            given = request.interrupt
            await self.interrupt(given.turn_id, received, given.played_ms if given.HasField("played_ms") else None)
        elif kind == "user_audio":
            await self._user_audio(request.user_audio)

    async def _configure(self, config: pb.SessionConfig) -> None:
        if self.config is not None:
            self._error("", "FAILED_PRECONDITION", "config was already received on this stream")
            return
        rate = config.sample_rate_hertz or DEFAULT_RATE_HZ
        if not 8000 <= rate <= 48000:
            self._error("", "INVALID_ARGUMENT", f"sample_rate_hertz {rate} not in 8000..48000")
            return
        if config.session_id and not _SESSION_ID.match(config.session_id):
            self._error("", "INVALID_ARGUMENT", "session_id must be 1-64 characters of [A-Za-z0-9_.:-]")
            return
        self.config = config
        self._playout = ClientPlayout(config.sample_rate_hertz or DEFAULT_RATE_HZ)
        self.session_id = config.session_id or uuid.uuid4().hex[:16]
        self.counter.open(self.session_id)
        done = await self.deps.history.open_session(self.session_id)
        self.gate.emit(pb.ConverseResponse(session_started=pb.SessionStarted(
            session_id=self.session_id, history_turns=done)))

    async def _user_text(self, text: str, received: float) -> None:
        text = text.strip()
        if not text or len(text) > self.deps.max_text_chars:
            self._error("", "INVALID_ARGUMENT", f"user_text must be 1..{self.deps.max_text_chars} characters "
                                                f"(got {len(text)})")
            return
        if self.turn is not None and self.turn.active:
            await self.interrupt("", received)  # a new utterance barges in
        await self.start_turn(text, received)

    # -- speech ------------------------------------------------------------
    async def _user_audio(self, audio: pb.UserAudio) -> None:
        try:  # the check the bridge applies to gateway audio too: one answer on both paths
            pcm.check_pcm16(audio.pcm, audio.sample_rate_hertz or pcm.DEFAULT_RATE_HZ)
        except pcm.PcmFormatError as exc:
            self._error("", "INVALID_ARGUMENT", f"user_audio: {exc}")
            return
        if self.deps.asr is None:
            self._error("", "UNIMPLEMENTED", "speech input is off on this server (--asr-model none)")
            return
        self._echo.heard(audio.pcm, audio.sample_rate_hertz or pcm.DEFAULT_RATE_HZ)
        if self.speech is None:
            self.speech = SpeechInput(self.deps.asr, self._on_speech)
        try:
            await self.speech.feed(audio.pcm, audio.sample_rate_hertz, audio.is_end)
        except ValueError as exc:
            self._error("", "INVALID_ARGUMENT", f"user_audio: {exc}")
        except SpeechUnavailable as exc:
            self._error("", "UNAVAILABLE", f"user_audio: {exc}")
        recognizer = self.speech.recognizer
        if self._judge is not None and recognizer is not None and recognizer.speaking:
            await self._act(self._judge.audio(recognizer.stream_s, recognizer.trailing_silence_s))

    async def _on_speech(self, event: RecognitionEvent) -> None:
        """Recognizer events, in order (see server.asr.speech_input)."""
        if isinstance(event, SpeechStarted):
            if self._pause(event.utterance, event.at_s):
                self.gate.emit(events.state("", pb.STATE_LISTENING))
        elif isinstance(event, PartialTranscript):
            if event.text:  # empty: a judged utterance's decode found no words (for the judge only)
                self.gate.emit(events.transcription("", event.text, is_final=False))
            if self._judge is not None:
                await self._act(self._judge.heard(event.text))
        elif event.utterance == self._judged_utterance and await self._not_a_turn(event.text):
            self.gate.emit(events.transcription("", event.text, is_final=True))  # shown, not answered
            if self.turn is None or not self.turn.active:
                self.gate.emit(events.state("", pb.STATE_IDLE))
        elif not event.text:
            self.gate.emit(events.transcription("", "", is_final=True))
            if self.turn is None or not self.turn.active:
                self.gate.emit(events.state("", pb.STATE_IDLE))  # nothing to answer: back from LISTENING
        else:
            received = time.perf_counter()
            if self.turn is not None and self.turn.active:
                await self.interrupt("", received)
            turn = await self.start_turn(event.text, received)
            self.gate.emit(events.transcription(turn.id, event.text, is_final=True))

    async def start_turn(self, text: str, received: float, announcement: str = "") -> Turn:
        assert self.config is not None
        self._judge, self._paused_playout = None, ""  # whatever was being judged concerned an older answer
        index = await self.counter.next(self.session_id)
        turn = Turn(self.deps, self.gate, TurnInput(
            self.session_id, index, text, self.config.sample_rate_hertz or DEFAULT_RATE_HZ,
            self.config.voice, not self.config.text_only, received, self.config.device_id, announcement))
        self.turn = turn
        turn.task = self._tasks.spawn(self._run(turn), turn.id)
        return turn

    async def _run(self, turn: Turn) -> None:
        try:
            await turn.run()
        except Exception as exc:
            log.exception("turn failed", extra={"corr": turn.id})
            self._error(turn.id, "INTERNAL", f"turn failed: {str(exc)[:300]}")
            self.gate.emit(events.state(turn.id, pb.STATE_IDLE))
            try:
                await turn.abandon()
            except Exception:
                log.exception("could not mark the failed turn abandoned", extra={"corr": turn.id})
        if self._announcements and self.turn is turn:  # nothing newer started meanwhile
            await self.start_turn("", time.perf_counter(), announcement=self._announcements.pop(0))

    async def announce(self, text: str) -> bool:
        """Speak server-initiated text (a reminder) as its own turn; False when it cannot be spoken.

        A running turn is never cut for an announcement: the text waits and is
        spoken when that turn has ended (at most MAX_PENDING_ANNOUNCEMENTS wait).
        """
        if self.config is None:
            return False
        if self.turn is not None and self.turn.active:
            if len(self._announcements) >= MAX_PENDING_ANNOUNCEMENTS:
                return False
            self._announcements.append(text)
            return True
        await self.start_turn("", time.perf_counter(), announcement=text)
        return True

    # -- barge-in ----------------------------------------------------------
    def _pause(self, utterance: int, onset_s: float) -> bool:
        """Speech started: hold the running answer, or pause the client's playout of a finished one.
        False: not paused, because our own speech only just started playing (echo.py's guard window);
        the utterance is judged all the same, so real words still barge in."""
        turn = self.turn
        guarded = self._echo.guarded(onset_s)
        if turn is not None and turn.active:
            if not guarded:
                turn.pause()
        elif self._playout.playing():
            self._paused_playout = self._playout.turn_id
        else:
            return True
        judge = BargeInJudge(self.deps.barge_in, onset_s)
        self._judge, self._judged_utterance, self._echoed = judge, utterance, False
        self._judged_onset_s = onset_s
        if self.speech is not None and self.speech.recognizer is not None:
            self.speech.recognizer.decode_quickly(utterance)  # the verdict waits on its decode
        self._tasks.spawn(self._watch(judge), "barge-in-watchdog")
        return not guarded

    async def _watch(self, judge: BargeInJudge) -> None:
        """A client that stops sending audio mid-utterance must not leave the answer paused for good."""
        await asyncio.sleep(self.deps.barge_in.max_pause_s)
        if self._judge is judge:
            await self._act(Verdict.RESUME)

    async def _not_a_turn(self, text: str) -> bool:
        """The final transcript of speech heard during playback: a backchannel, noise or our own
        voice is no turn (and resumes the answer if still paused); real words cut the answer."""
        if self._judge is not None:
            await self._act(self._judge.ended(text))
        else:  # resumed already (on silence): the final words may still cut it
            self._echoed = self._echoed or (bool(text) and await self._echo.is_echo(self._judged_onset_s))
            if not self._echoed and not is_backchannel(text):
                await self._act(Verdict.INTERRUPT, judged=False)
        return self._echoed or is_backchannel(text)

    async def _act(self, verdict: Verdict, judged: bool = True) -> None:
        """Carry out the judge's verdict, once (WAIT: nothing yet). Speech that would barge in is
        first compared with what we sent (echo.py): our own voice coming back resumes instead."""
        if verdict is Verdict.WAIT or (judged and self._judge is None):
            return
        self._judge, paused_playout, self._paused_playout = None, self._paused_playout, ""
        if verdict is Verdict.INTERRUPT and await self._echo.is_echo(self._judged_onset_s):
            verdict, self._echoed = Verdict.RESUME, True
        turn = self.turn
        if verdict is Verdict.INTERRUPT:
            if turn is not None and turn.active:
                await self.interrupt("", time.perf_counter())  # barge-in by voice
            elif paused_playout:
                # The turn is complete but its audio was still playing on the client: tell it to
                # drop the rest (the turn's final events are already out; nothing else changes).
                turn_id, chunks = self._playout.stop()
                self.gate.emit(events.audio_cancel(turn_id, chunks))
        elif turn is not None and turn.active and turn.paused:
            turn.resume()
            self.gate.emit(events.state(turn.id, pb.STATE_SPEAKING if turn.audio_begun else pb.STATE_THINKING))
        elif paused_playout:
            self.gate.emit(events.state(paused_playout, pb.STATE_SPEAKING))  # the client plays on

    async def interrupt(self, turn_id: str, received: float, played_ms: float | None = None) -> None:
        """End the running turn (or, when the client says it was still playing a completed one,
        correct that one to what was heard); `played_ms` is Interrupt.played_ms, if given."""
        turn = self.turn
        if turn_id and (turn is None or turn_id != turn.id):
            if self._is_past(turn_id):
                self._error(turn_id, "FAILED_PRECONDITION", f"turn {turn_id} has already ended")
            else:
                self._error(turn_id, "NOT_FOUND", f"no turn {turn_id!r} in this session")
            return
        if turn is None or not turn.active:
            if turn is not None and turn.still_playing(played_ms):
                self.gate.emit(events.audio_cancel(turn.id, turn.chunks_sent))
                await turn.cut_playout((time.perf_counter() - received) * 1000.0, played_ms or 0.0)
            elif turn_id:
                self._error(turn_id, "FAILED_PRECONDITION", f"turn {turn_id} has already ended")
            return
        self.gate.close_turn(turn.id)
        self.gate.emit(events.audio_cancel(turn.id, turn.chunks_sent))
        t_interrupt_ms = (time.perf_counter() - received) * 1000.0
        await cancel_and_wait(turn.task)
        await turn.finish_interrupted(t_interrupt_ms, played_ms)

    def _is_past(self, turn_id: str) -> bool:
        """An earlier turn of this stream: same session, a lower number than the current turn's."""
        session, _, number = turn_id.rpartition("#")
        current = self.turn.input.turn_index if self.turn is not None else 0
        return session == self.session_id and number.isdigit() and int(number) < current

    # -- plumbing ----------------------------------------------------------
    def _delivered(self, event: pb.ConverseResponse) -> None:
        self._playout.delivered(event)
        if self.speech is not None and self.config is not None and event.HasField("audio_chunk"):
            self._echo.sent(event.audio_chunk.pcm, self.config.sample_rate_hertz or DEFAULT_RATE_HZ)  # a voice client
        if self.turn is not None and event.turn_id == self.turn.id:
            self.turn.on_delivered(event)

    def _error(self, turn_id: str, code: str, message: str) -> None:
        log.info("client error %s: %s", code, message, extra={"corr": turn_id or self.session_id or "-"})
        self.gate.emit(events.error(turn_id, code, message))

    async def close(self) -> None:
        """The stream is gone: stop the running turn and keep its history consistent."""
        turn = self.turn
        if turn is not None and turn.task is not None and not turn.active and not turn.task.done():
            await asyncio.shield(turn.task)  # already answered: let it finish storing, don't cut it
        elif turn is not None and turn.active and turn.task is not None:
            self.gate.close_turn(turn.id)
            await cancel_and_wait(turn.task)
            try:
                await turn.finish_interrupted(0.0)
            except Exception:
                log.exception("could not persist the interrupted turn", extra={"corr": turn.id})
        if self.speech is not None:
            await self.speech.close()
        await self._tasks.close()
        if self.config is not None:
            self.counter.close(self.session_id)
