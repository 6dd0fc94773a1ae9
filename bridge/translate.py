"""Dialog events (ConverseResponse) → Gateway envelopes for one device.

Every event becomes an ActionRequest named after it (state_update,
assistant_delta, assistant_final, audio_begin, audio_end, audio_cancel,
metrics, transcription, tool_call, tool_result, error) with string params
that always include turn_id. Audio chunks become binary DataStream
envelopes (stream_id = turn id, seq from 0 without gaps, content_type
"audio/pcm;rate=…;channels=1", 4–16 KiB; an empty is_end chunk closes the
stream). For PeroCore clients (hello.protocol_version 0) the PeroCore names
are emitted too: voice_update {type: status|transcription|text_response,
content} and text_response {content}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from peromesh.dialog.v1 import dialog_service_pb2 as dpb
from peromesh.gateway.v1 import envelope_pb2 as gw
from server.hub import envelopes as env

from .outbound import Kind, Outbound

MAX_AUDIO_CHUNK = 16 * 1024
STATE_NAMES = {dpb.STATE_IDLE: "idle", dpb.STATE_LISTENING: "listening", dpb.STATE_THINKING: "thinking",
               dpb.STATE_SPEAKING: "speaking", dpb.STATE_INTERRUPTED: "interrupted"}


class EventTranslator:
    """Stateful per connection: remembers each turn's audio format and chunk numbering."""

    def __init__(self, node_id: str, perocore_twins: bool = True) -> None:
        self.node_id = node_id
        self.perocore_twins = perocore_twins  # PeroLink v1 clients (hello.protocol_version 0) get them
        self._content_type: dict[str, str] = {}
        self._seq: dict[str, int] = {}

    def translate(self, event: dpb.ConverseResponse) -> list[Outbound]:
        kind = event.WhichOneof("event")
        handler = self._handlers().get(kind or "")
        return list(handler(event.turn_id, event)) if handler else []

    def _handlers(self) -> dict[str, Callable[[str, dpb.ConverseResponse], Iterable[Outbound]]]:
        return {"state_update": self._state, "transcription": self._transcription,
                "assistant_delta": self._delta, "assistant_final": self._final, "audio_begin": self._audio_begin,
                "audio_chunk": self._audio_chunk, "audio_end": self._audio_end, "audio_cancel": self._audio_cancel,
                "metrics": self._metrics, "tool_call": self._tool_call, "tool_result": self._tool_result,
                "error": self._error}

    def _action(self, name: str, turn: str, kind: Kind, /, **params: str) -> Outbound:
        envelope = env.action(self.node_id, name, {"turn_id": turn, **params}, trace_id=turn)
        return Outbound(envelope, kind, turn)

    def _state(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        state = STATE_NAMES.get(e.state_update.state, "unknown")
        yield self._action("state_update", turn, Kind.CLOSING, state=state)
        if self.perocore_twins:
            yield self._action("voice_update", turn, Kind.CLOSING, type="status", content=state)

    def _transcription(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        t = e.transcription
        yield self._action("transcription", turn, Kind.CONTENT, text=t.text, is_final=_flag(t.is_final))
        if t.is_final and self.perocore_twins:
            yield self._action("voice_update", turn, Kind.CONTENT, type="transcription", content=t.text)

    def _delta(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        yield self._action("assistant_delta", turn, Kind.CONTENT, text_delta=e.assistant_delta.text_delta)

    def _final(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        f = e.assistant_final
        yield self._action("assistant_final", turn, Kind.CLOSING, text=f.text, interrupted=_flag(f.interrupted),
                           heard_text=f.heard_text)
        if self.perocore_twins:
            yield self._action("text_response", turn, Kind.CLOSING, content=f.text)
            yield self._action("voice_update", turn, Kind.CLOSING, type="text_response", content=f.text)

    def _audio_begin(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        b = e.audio_begin
        rate, channels = b.sample_rate_hertz or 24000, b.channels or 1
        self._content_type[turn] = f"audio/pcm;rate={rate};channels={channels}"
        self._seq[turn] = 0
        yield self._action("audio_begin", turn, Kind.CONTENT, mime=b.mime or self._content_type[turn],
                           sample_rate=str(rate), channels=str(channels), format="pcm_s16le")

    def _audio_chunk(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        pcm = e.audio_chunk.pcm
        for start in range(0, len(pcm), MAX_AUDIO_CHUNK):
            yield self._stream(turn, pcm[start:start + MAX_AUDIO_CHUNK], is_end=False)

    def _audio_end(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        yield self._stream(turn, b"", is_end=True)
        self._forget(turn)
        yield self._action("audio_end", turn, Kind.CONTENT, chunk_count=str(e.audio_end.chunk_count))

    def _audio_cancel(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        self._forget(turn)
        yield self._action("audio_cancel", turn, Kind.CONTROL, chunks_sent=str(e.audio_cancel.chunks_sent))

    def _metrics(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        m = e.metrics
        yield self._action("metrics", turn, Kind.CLOSING, t_first_delta_ms=_ms(m.t_first_delta_ms),
                           t_first_audio_ms=_ms(m.t_first_audio_ms), t_total_ms=_ms(m.t_total_ms),
                           t_interrupt_ms=_ms(m.t_interrupt_ms), tokens=str(m.tokens))

    def _tool_call(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        c = e.tool_call
        yield self._action("tool_call", turn, Kind.CONTENT, call_id=c.call_id, name=c.name,
                           arguments_json=c.arguments_json)

    def _tool_result(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        r = e.tool_result
        yield self._action("tool_result", turn, Kind.CONTENT, call_id=r.call_id, result_json=r.result_json,
                           error=r.error)

    def _error(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        yield self._action("error", turn, Kind.CONTROL, code=e.error.code, message=e.error.message)

    def _stream(self, turn: str, data: bytes, is_end: bool) -> Outbound:
        seq = self._seq.get(turn, 0)
        self._seq[turn] = seq + 1
        content_type = self._content_type.get(turn, "audio/pcm;rate=24000;channels=1")
        envelope = gw.Envelope(id=env.new_id(), source_id=env.MASTER, target_id=self.node_id,
                               timestamp=env.now_ms(), trace_id=turn,
                               stream=gw.DataStream(stream_id=turn, data=data, is_end=is_end,
                                                    content_type=content_type, seq=seq, turn_id=turn))
        return Outbound(envelope, Kind.AUDIO, turn)

    def _forget(self, turn: str) -> None:
        self._content_type.pop(turn, None)
        self._seq.pop(turn, None)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _ms(value: float) -> str:
    return f"{value:.3f}"
