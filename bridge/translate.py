"""Dialog events (ConverseResponse) → Gateway envelopes for one device.

Every event becomes an ActionRequest named after it (assistant_delta,
assistant_final, audio_begin, audio_end, audio_cancel, metrics,
transcription, tool_call, tool_result, error, and state_update) with string
params that always include turn_id.

Clients that negotiated the PeroMesh protocol (hello.protocol_version ≥ 1)
get exactly those, and speech as binary DataStream envelopes of raw PCM
(stream_id = turn id, seq from 0 without gaps, content_type
"audio/pcm;rate=…;channels=1", 4–16 KiB; an empty is_end chunk closes the
stream).

PeroLink v1 clients (no protocol_version: PeroCore's own clients) are served
in PeroCore's terms, so that its views work unmodified:
- speech as one complete WAV file per clause (clause_audio.py), each its own
  DataStream (stream_id "<turn>/<n>", is_end set, content_type "audio/wav"),
  because PeroCore decodes every DataStream as one audio file;
- the voice state only as voice_update {type: status, content}, because
  PeroCore's `state_update` is the pet's mood/vibe/mind state;
- voice_update {type: transcription|text_response, content} and
  text_response {content}, as PeroCore's backend sends them;
- new_message {id, role, content, timestamp, agent_id, metadata} for the
  user's message and the final answer, which PeroCore's chat view shows.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable

from peromesh.dialog.v1 import dialog_service_pb2 as dpb
from peromesh.gateway.v1 import envelope_pb2 as gw
from server.wire import envelopes as env

from .clause_audio import ClauseFiles
from .outbound import Kind, Outbound

MAX_AUDIO_CHUNK = 16 * 1024
WAV_CONTENT_TYPE = "audio/wav"
AGENT_ID = "pero"  # PeroCore's default agent: its chat view files messages under an agent id
STATE_NAMES = {dpb.STATE_IDLE: "idle", dpb.STATE_LISTENING: "listening", dpb.STATE_THINKING: "thinking",
               dpb.STATE_SPEAKING: "speaking", dpb.STATE_INTERRUPTED: "interrupted"}


class EventTranslator:
    """Stateful per connection: each turn's audio format and numbering (and, for v1, its clause files)."""

    def __init__(self, node_id: str, perolink_v1: bool = True) -> None:
        self.node_id = node_id
        self.perolink_v1 = perolink_v1  # hello without protocol_version: PeroCore's event names and WAV speech
        self._content_type: dict[str, str] = {}
        self._seq: dict[str, int] = {}
        self._clauses: dict[str, ClauseFiles] = {}

    def translate(self, event: dpb.ConverseResponse) -> list[Outbound]:
        kind = event.WhichOneof("event")
        handler = self._handlers().get(kind or "")
        return list(handler(event.turn_id, event)) if handler else []

    def user_message(self, turn: str, text: str) -> list[Outbound]:
        """The user's typed message of `turn` as PeroCore's new_message (v1 clients only)."""
        return [self._new_message(turn, "user", text)] if self.perolink_v1 and text else []

    def _handlers(self) -> dict[str, Callable[[str, dpb.ConverseResponse], Iterable[Outbound]]]:
        return {"state_update": self._state, "transcription": self._transcription,
                "assistant_delta": self._delta, "assistant_final": self._final, "audio_begin": self._audio_begin,
                "audio_chunk": self._audio_chunk, "audio_end": self._audio_end, "audio_cancel": self._audio_cancel,
                "metrics": self._metrics, "tool_call": self._tool_call, "tool_result": self._tool_result,
                "error": self._error}

    def _action(self, name: str, turn: str, kind: Kind, /, **params: str) -> Outbound:
        envelope = env.action(self.node_id, name, {"turn_id": turn, **params}, trace_id=turn)
        return Outbound(envelope, kind, turn)

    def _new_message(self, turn: str, role: str, content: str, **metadata: object) -> Outbound:
        when = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return self._action("new_message", turn, Kind.CLOSING, id=f"{turn}:{role}", role=role, content=content,
                            timestamp=when, agent_id=AGENT_ID,
                            metadata=json.dumps({"turn_id": turn, **metadata}, ensure_ascii=False))

    def _state(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        state = STATE_NAMES.get(e.state_update.state, "unknown")
        if self.perolink_v1:
            yield self._action("voice_update", turn, Kind.CLOSING, type="status", content=state)
        else:
            yield self._action("state_update", turn, Kind.CLOSING, state=state)

    def _transcription(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        t = e.transcription
        yield self._action("transcription", turn, Kind.CONTENT, text=t.text, is_final=_flag(t.is_final))
        if t.is_final and self.perolink_v1:
            yield self._action("voice_update", turn, Kind.CONTENT, type="transcription", content=t.text)
            if turn and t.text:  # what the user said, once it started a turn
                yield self._new_message(turn, "user", t.text, source="voice")

    def _delta(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        yield self._action("assistant_delta", turn, Kind.CONTENT, text_delta=e.assistant_delta.text_delta)

    def _final(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        f = e.assistant_final
        yield self._action("assistant_final", turn, Kind.CLOSING, text=f.text, interrupted=_flag(f.interrupted),
                           heard_text=f.heard_text)
        if self.perolink_v1:
            yield self._action("text_response", turn, Kind.CLOSING, content=f.text)
            yield self._action("voice_update", turn, Kind.CLOSING, type="text_response", content=f.text)
            yield self._new_message(turn, "assistant", f.text, interrupted=f.interrupted, heard_text=f.heard_text)

    def _audio_begin(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        b = e.audio_begin
        rate, channels = b.sample_rate_hertz or 24000, b.channels or 1
        self._content_type[turn] = f"audio/pcm;rate={rate};channels={channels}"
        self._seq[turn] = 0
        if self.perolink_v1:
            self._clauses[turn] = ClauseFiles(rate, channels)
            yield self._action("audio_begin", turn, Kind.CONTENT, mime=WAV_CONTENT_TYPE, sample_rate=str(rate),
                               channels=str(channels), format="wav")
            return
        yield self._action("audio_begin", turn, Kind.CONTENT, mime=b.mime or self._content_type[turn],
                           sample_rate=str(rate), channels=str(channels), format="pcm_s16le")

    def _audio_chunk(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        chunk = e.audio_chunk
        clauses = self._clauses.get(turn)
        if clauses is not None:
            for data in clauses.add(chunk.pcm, chunk.clause_end):
                yield self._wav_stream(turn, data)
            return
        for start in range(0, len(chunk.pcm), MAX_AUDIO_CHUNK):
            yield self._stream(turn, chunk.pcm[start:start + MAX_AUDIO_CHUNK], is_end=False)

    def _audio_end(self, turn: str, e: dpb.ConverseResponse) -> Iterable[Outbound]:
        clauses = self._clauses.get(turn)
        if clauses is not None:  # every v1 file is a whole stream: no empty end marker (it would not decode)
            for data in clauses.finish():
                yield self._wav_stream(turn, data)
        else:
            yield self._stream(turn, b"", is_end=True)
        self._forget(turn)
        yield self._action("audio_end", turn, Kind.CONTENT, chunk_count=str(e.audio_end.chunk_count),
                           voices=",".join(e.audio_end.voices))

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
        seq = self._next_seq(turn)
        content_type = self._content_type.get(turn, "audio/pcm;rate=24000;channels=1")
        return self._audio(turn, gw.DataStream(stream_id=turn, data=data, is_end=is_end,
                                               content_type=content_type, seq=seq, turn_id=turn))

    def _wav_stream(self, turn: str, wav: bytes) -> Outbound:
        """One clause file, a complete stream of its own (PeroCore plays each DataStream as a file)."""
        n = self._next_seq(turn)
        return self._audio(turn, gw.DataStream(stream_id=f"{turn}/{n}", data=wav, is_end=True,
                                               content_type=WAV_CONTENT_TYPE, seq=0, turn_id=turn))

    def _audio(self, turn: str, stream: gw.DataStream) -> Outbound:
        envelope = gw.Envelope(id=env.new_id(), source_id=env.MASTER, target_id=self.node_id,
                               timestamp=env.now_ms(), trace_id=turn, stream=stream)
        return Outbound(envelope, Kind.AUDIO, turn)

    def _next_seq(self, turn: str) -> int:
        seq = self._seq.get(turn, 0)
        self._seq[turn] = seq + 1
        return seq

    def _forget(self, turn: str) -> None:
        self._content_type.pop(turn, None)
        self._seq.pop(turn, None)
        self._clauses.pop(turn, None)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _ms(value: float) -> str:
    return f"{value:.3f}"
