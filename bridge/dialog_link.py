"""A device's conversation: its DialogService.Converse stream, seen from the bridge.

Opened at the device's first dialog message (idle devices such as reminder
receivers hold no dialog session), with the session id the hub assigned, so
a reconnect inside the grace window continues the same history. Client
messages become Converse requests; Converse events become envelopes (see
translate.py) handed to the connection's one outbound point.

`chat` requests are answered with their turn id when the turn's first event
arrives: `_pending` holds, in order, the chat requests and the ends of
utterances (audio streams) that have not started a turn yet. An `interrupt`
naming a turn is answered when the dialog has acted on it: ok at that turn's
`audio_cancel`, or the dialog's error for that turn id (`_interrupts`).

Audio is checked here, before it is forwarded, with the same check the
dialog applies to gRPC clients (`server.audio.pcm`): a bad rate, an odd byte
count, more than one channel or an unsupported content type gets a precise
INVALID_ARGUMENT for that one message, and the stream stays usable. Both
queues of unanswered inputs are bounded (MAX_PENDING): beyond it a new
input is refused with RESOURCE_EXHAUSTED rather than buffered.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

import grpc

from peromesh.dialog.v1 import dialog_service_pb2 as dpb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as dpb_grpc
from peromesh.gateway.v1 import envelope_pb2 as gw
from server.audio.pcm import DEFAULT_RATE_HZ, PcmFormatError, check_pcm16, check_rate
from server.audio.wav_stream import WavFormatError, WavStreamDecoder
from server.wire import envelopes as env

from .outbound import Outbound
from .translate import EventTranslator

log = logging.getLogger(__name__)
TEXT_ACTIONS = frozenset({"chat", "user_text"})
MAX_WAV_STREAMS = 4
WAV_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
OPEN_TIMEOUT_S = 10.0
MAX_PENDING = 64  # inputs waiting for their turn (or their interrupt's outcome) per connection
PCM_TYPE = "audio/pcm"
_DIGITS = re.compile(r"[0-9]{1,12}")  # longer is no rate (and int() of a huge string is costly)
VOICE_NAME = re.compile(r"[A-Za-z0-9_+-]{0,64}")  # hello.voice: a voices:list name (en_US-joe-medium, en-us+f3)


class DialogClosed(Exception):
    """The Converse stream failed or ended; the connection closes with 1011 and this reason."""


class DialogLink:
    def __init__(self, stub: dpb_grpc.DialogServiceStub, metadata: tuple[tuple[str, str], ...],
                 out: Callable[[Outbound], None], cancel_turn: Callable[[str], object],
                 spawn: Callable[[Coroutine[Any, Any, None], str], None]) -> None:
        self._stub = stub
        self._metadata = metadata
        self._out = out
        self._cancel_turn = cancel_turn
        self._spawn = spawn
        self.node_id = self.session_id = self.voice = ""
        self.translator = EventTranslator("")
        self._call: grpc.aio.StreamStreamCall | None = None
        self._opening = asyncio.Lock()  # the first use and an early open (open_now) open one stream
        self._pending: collections.deque[gw.Envelope] = collections.deque()
        self._interrupts: collections.deque[gw.Envelope] = collections.deque()  # naming a turn, unanswered
        self._seen_turns: collections.deque[str] = collections.deque(maxlen=64)
        self._wav_streams: dict[str, WavStreamDecoder] = {}  # WAV uploads being decoded, by stream id

    def configure(self, node_id: str, session_id: str, perocore_twins: bool = True, voice: str = "") -> None:
        """Who the stream is for; `voice` (the hello's) goes into the SessionConfig when it opens."""
        self.node_id, self.session_id, self.voice = node_id, session_id, voice
        self.translator = EventTranslator(node_id, perocore_twins)

    @staticmethod
    def wants(envelope: gw.Envelope) -> bool:
        """True for what the dialog handles: chat/user_text, interrupt, audio streams to "master"."""
        if envelope.target_id not in (env.MASTER, ""):
            return False
        kind = envelope.WhichOneof("payload")
        if kind == "request":
            return envelope.request.action_name in TEXT_ACTIONS or envelope.request.action_name == "interrupt"
        return kind == "stream" and media_type(envelope.stream.content_type)[0].startswith("audio/")

    async def handle(self, envelope: gw.Envelope) -> None:
        if envelope.HasField("stream"):
            media, params = media_type(envelope.stream.content_type)
            if media == PCM_TYPE:
                await self._user_audio(envelope, params)
            elif media in WAV_TYPES:
                await self._user_wav(envelope)
            else:
                self._error(envelope.id, "INVALID_ARGUMENT",
                            f"audio stream {envelope.stream.stream_id[:64]!r}: unsupported content type "
                            f"{envelope.stream.content_type[:64]!r}; send audio/pcm;rate=8000..48000 "
                            "(PCM16LE mono) or audio/wav")
        elif envelope.request.action_name == "interrupt":
            await self._interrupt(envelope)
        else:
            await self._user_text(envelope)

    def close(self) -> None:
        if self._call is not None:
            self._call.cancel()

    # -- client → dialog -------------------------------------------------
    async def _user_text(self, envelope: gw.Envelope) -> None:
        params = envelope.request.params
        text = params.get("text") or params.get("content") or ""
        if not text.strip():
            self._error(envelope.id, "INVALID_ARGUMENT", f"{envelope.request.action_name} needs params.text")
            return
        if self._remember(self._pending, envelope):
            await self._write(dpb.ConverseRequest(user_text=dpb.UserText(text=text)))

    async def _interrupt(self, envelope: gw.Envelope) -> None:
        """Barge in. Naming a turn, the answer waits for the dialog's verdict on it (`_on_event`);
        without one it interrupts whatever is running, and nothing running is no error."""
        turn_id = envelope.request.params.get("turn_id", "")
        played = envelope.request.params.get("played_ms", "")
        if played and not (played.isdigit() and int(played) < 2**32):
            self._error(envelope.id, "INVALID_ARGUMENT", f"played_ms must be a count of milliseconds, got {played!r}")
            return
        if turn_id and envelope.id and not self._remember(self._interrupts, envelope):
            return
        # The person stopped it: what is queued for them now stops here, not one round trip to the
        # dialog later (by then a lagging client's backlog may have left). The dialog's audio_cancel
        # purges again; its verdict (cut, or complete because all was heard) still decides the row.
        if target := turn_id or (self._seen_turns[-1] if self._seen_turns else ""):
            self._cancel_turn(target)
        interrupt = dpb.Interrupt(turn_id=turn_id, played_ms=int(played)) if played else dpb.Interrupt(turn_id=turn_id)
        await self._write(dpb.ConverseRequest(interrupt=interrupt))
        if envelope.id and not turn_id:
            self._out(Outbound(env.ok(envelope, turn_id)))

    async def _user_audio(self, envelope: gw.Envelope, params: dict[str, str]) -> None:
        stream = envelope.stream
        try:
            rate = pcm_rate(params)
            check_pcm16(stream.data, rate)
        except PcmFormatError as exc:
            self._error(envelope.id, "INVALID_ARGUMENT", f"audio stream {stream.stream_id[:64]!r}: {exc}")
            return
        if stream.is_end and not self._remember(self._pending, envelope):
            return
        await self._write(dpb.ConverseRequest(user_audio=dpb.UserAudio(
            pcm=stream.data, is_end=stream.is_end, sample_rate_hertz=rate)))

    def _remember(self, waiting: collections.deque[gw.Envelope], envelope: gw.Envelope) -> bool:
        """Queue an input for its answer; False (and the client told) when MAX_PENDING already wait."""
        if len(waiting) >= MAX_PENDING:
            self._error(envelope.id, "RESOURCE_EXHAUSTED",
                        f"{MAX_PENDING} inputs are already waiting for the dialog; this one was dropped")
            return False
        waiting.append(envelope)
        return True

    async def _user_wav(self, envelope: gw.Envelope) -> None:
        """A WAV file in pieces (stream_id keeps them apart): decoded to PCM16 mono as it comes."""
        stream = envelope.stream
        if stream.stream_id not in self._wav_streams and len(self._wav_streams) >= MAX_WAV_STREAMS:
            self._error(envelope.id, "RESOURCE_EXHAUSTED", f"more than {MAX_WAV_STREAMS} WAV streams at once")
            return
        decoder = self._wav_streams.setdefault(stream.stream_id, WavStreamDecoder())
        try:
            pcm = decoder.feed(stream.data)
        except WavFormatError as exc:
            self._wav_streams.pop(stream.stream_id, None)
            self._error(envelope.id, "INVALID_ARGUMENT", f"audio stream {stream.stream_id!r}: {exc}")
            return
        if stream.is_end:
            self._wav_streams.pop(stream.stream_id, None)
            if not self._remember(self._pending, envelope):
                return
        if pcm or stream.is_end:
            await self._write(dpb.ConverseRequest(user_audio=dpb.UserAudio(
                pcm=pcm, is_end=stream.is_end, sample_rate_hertz=decoder.sample_rate_hertz)))

    async def _write(self, request: dpb.ConverseRequest) -> None:
        await (await self._stream()).write(request)

    @property
    def is_open(self) -> bool:
        return self._call is not None

    async def open_now(self) -> None:
        """Open the Converse stream before the device's first dialog message: a reminder has
        arrived for it, and the core speaks reminders on the device's dialog session. A failure
        is only logged here; the device's next dialog message meets it and closes the connection."""
        try:
            await self._stream()
        except (DialogClosed, grpc.aio.AioRpcError, TimeoutError) as exc:
            log.warning("opening the dialog of %s for a reminder failed: %s", self.node_id, exc)

    async def _stream(self) -> grpc.aio.StreamStreamCall:
        """The Converse stream, opened (and its reader started) on first use."""
        async with self._opening:
            if self._call is None:
                self._call = self._stub.Converse(metadata=self._metadata)
                config = dpb.SessionConfig(session_id=self.session_id, device_id=self.node_id,
                                           sample_rate_hertz=24000, voice=self.voice)
                await self._call.write(dpb.ConverseRequest(config=config))
                first = await asyncio.wait_for(self._call.read(), OPEN_TIMEOUT_S)
                if first is grpc.aio.EOF or not first.HasField("session_started"):
                    detail = "stream ended" if first is grpc.aio.EOF else first.error.message
                    raise DialogClosed(f"the dialog refused the session: {detail}")
                self._spawn(self._read(), "dialog-reader")
        return self._call

    # -- dialog → client -------------------------------------------------
    async def _read(self) -> None:
        assert self._call is not None
        try:
            while (event := await self._call.read()) is not grpc.aio.EOF:
                self._on_event(event)
        except grpc.aio.AioRpcError as exc:
            raise DialogClosed(f"dialog stream failed: {exc.details()}") from exc
        raise DialogClosed("the dialog ended the session")

    def _on_event(self, event: dpb.ConverseResponse) -> None:
        turn = event.turn_id
        if turn and self._interrupts and self._interrupt_answered(event):
            return
        if turn and event.HasField("error") and turn not in self._seen_turns:
            pass  # about a turn id the client named (e.g. interrupting an unknown turn): no turn starts
        elif turn and turn not in self._seen_turns:
            self._seen_turns.append(turn)
            self._answer_pending(turn)
        elif not turn and event.HasField("error") and self._pending:
            request = self._pending.popleft()  # the oldest input that has not started a turn failed
            if request.HasField("request"):
                self._error(request.id, event.error.code, event.error.message)
                return
        elif not turn and event.HasField("transcription") and event.transcription.is_final:
            self._forget_utterance()  # speech that started no turn (e.g. silence)
        if event.HasField("audio_cancel"):
            self._cancel_turn(turn)  # barge-in: purge the turn's queued content first
        for item in self.translator.translate(event):
            self._out(item)

    def _answer_pending(self, turn: str) -> None:
        """The first event of a new turn answers the oldest chat request with its turn id."""
        if self._pending:
            request = self._pending.popleft()
            if request.id and request.HasField("request"):
                self._out(Outbound(env.ok(request, json.dumps({"turn_id": turn}))))
            if request.HasField("request"):  # the typed message, for PeroCore's chat view (v1 clients)
                params = request.request.params
                for item in self.translator.user_message(turn, params.get("text") or params.get("content", "")):
                    self._out(item)

    def _interrupt_answered(self, event: dpb.ConverseResponse) -> bool:
        """Answer the oldest interrupt naming this turn: ok at its audio_cancel, else the dialog's
        error. True when the event was that error (the answer replaces it)."""
        if not (event.HasField("error") or event.HasField("audio_cancel")):
            return False
        request = next((r for r in self._interrupts if r.request.params.get("turn_id") == event.turn_id), None)
        if request is None:
            return False
        self._interrupts.remove(request)
        if event.HasField("audio_cancel"):
            self._out(Outbound(env.ok(request, event.turn_id)))
            return False
        self._error(request.id, event.error.code, event.error.message)
        return True

    def _forget_utterance(self) -> None:
        for pending in self._pending:
            if pending.HasField("stream"):
                self._pending.remove(pending)
                return

    def _error(self, request_id: str, code: str, message: str) -> None:
        self._out(Outbound(env.error(request_id, self.node_id, code, message)))


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """`"audio/pcm; rate=16000"` → ("audio/pcm", {"rate": "16000"}): the media type lower-cased,
    parameter names lower-cased, values as given."""
    media, *parameters = content_type.split(";")
    params: dict[str, str] = {}
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        params[name.strip().lower()] = value.strip()
    return media.strip().lower(), params


def pcm_rate(params: dict[str, str]) -> int:
    """The sample rate of an `audio/pcm` stream (16 kHz when not given); PcmFormatError for a rate
    that is no number or out of range, or for more than one channel."""
    channels = params.get("channels", "1")
    if channels != "1":
        raise PcmFormatError(f"audio/pcm must be mono (channels=1), not channels={channels[:16]!r}")
    raw = params.get("rate", "")
    if not raw:
        return DEFAULT_RATE_HZ
    if not _DIGITS.fullmatch(raw):
        raise PcmFormatError(f"rate {raw[:16]!r} is not a whole number of Hz")
    rate = int(raw)
    check_rate(rate)
    return rate
