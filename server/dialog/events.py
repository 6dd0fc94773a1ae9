"""Constructors for ConverseResponse events (keeps the turn loop readable)."""

from __future__ import annotations

from collections.abc import Sequence

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.tts.visemes import mouth_shapes


def state(turn_id: str, value: pb.State.ValueType) -> pb.ConverseResponse:
    return pb.ConverseResponse(turn_id=turn_id, state_update=pb.StateUpdate(state=value))


def delta(turn_id: str, text: str) -> pb.ConverseResponse:
    return pb.ConverseResponse(turn_id=turn_id, assistant_delta=pb.AssistantDelta(text_delta=text))


def final(turn_id: str, text: str, interrupted: bool, heard_text: str) -> pb.ConverseResponse:
    return pb.ConverseResponse(turn_id=turn_id, assistant_final=pb.AssistantFinal(
        text=text, interrupted=interrupted, heard_text=heard_text))


def audio_begin(turn_id: str, rate: int) -> pb.ConverseResponse:
    return pb.ConverseResponse(turn_id=turn_id, audio_begin=pb.AudioBegin(
        mime=f"audio/pcm;rate={rate};channels=1", sample_rate_hertz=rate, channels=1,
        format=pb.AUDIO_FORMAT_PCM_S16LE))


def audio_chunk(turn_id: str, seq: int, pcm: bytes, clause_end: bool = False) -> pb.ConverseResponse:
    return pb.ConverseResponse(turn_id=turn_id, audio_chunk=pb.AudioChunk(
        seq=seq, pcm=pcm, visemes=mouth_shapes(pcm), clause_end=clause_end))


def audio_end(turn_id: str, count: int, voices: Sequence[str] = ()) -> pb.ConverseResponse:
    return pb.ConverseResponse(turn_id=turn_id, audio_end=pb.AudioEnd(chunk_count=count, voices=voices))


def audio_cancel(turn_id: str, sent: int) -> pb.ConverseResponse:
    return pb.ConverseResponse(turn_id=turn_id, audio_cancel=pb.AudioCancel(chunks_sent=sent))


def transcription(turn_id: str, text: str, is_final: bool) -> pb.ConverseResponse:
    return pb.ConverseResponse(turn_id=turn_id, transcription=pb.Transcription(text=text, is_final=is_final))


def error(turn_id: str, code: str, message: str) -> pb.ConverseResponse:
    return pb.ConverseResponse(turn_id=turn_id, error=pb.ErrorEvent(code=code, message=message))
