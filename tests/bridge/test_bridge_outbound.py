"""The outbound queue (barge-in filter, slow-client policy) and the event translator, without sockets."""

from __future__ import annotations

import asyncio

import pytest

from bridge.outbound import Kind, Outbound, OutboundQueue, SlowClientError
from bridge.translate import EventTranslator
from peromesh.dialog.v1 import dialog_service_pb2 as dpb
from peromesh.gateway.v1 import envelope_pb2 as gw


def item(kind: Kind, turn: str, name: str = "", audio_bytes: int = 0) -> Outbound:
    if kind is Kind.AUDIO:
        envelope = gw.Envelope(stream=gw.DataStream(stream_id=turn, data=bytes(audio_bytes)))
    else:
        envelope = gw.Envelope(request=gw.ActionRequest(action_name=name or kind.value, params={"turn_id": turn}))
    return Outbound(envelope, kind, turn)


async def take_all(queue: OutboundQueue) -> list[Outbound]:
    out = []
    while len(queue):
        out.append(await asyncio.wait_for(queue.get(), 1))
    return out


async def test_cancel_purges_queued_content_and_blocks_later_content() -> None:
    queue = OutboundQueue()
    queue.push(item(Kind.CONTENT, "t1", "assistant_delta"))
    queue.push(item(Kind.AUDIO, "t1", audio_bytes=8192))
    queue.push(item(Kind.CONTROL, "", "heartbeat"))
    assert queue.cancel_turn("t1") == 2
    queue.push(item(Kind.CONTROL, "t1", "audio_cancel"))
    queue.push(item(Kind.CONTENT, "t1", "assistant_delta"))  # late: dropped
    queue.push(item(Kind.AUDIO, "t1", audio_bytes=8192))  # late: dropped
    queue.push(item(Kind.CLOSING, "t1", "assistant_final"))  # the summary may follow
    queue.push(item(Kind.CONTENT, "t2", "assistant_delta"))  # the next turn flows
    names = [o.envelope.request.action_name for o in await take_all(queue)]
    assert names == ["heartbeat", "audio_cancel", "assistant_final", "assistant_delta"]
    assert queue.dropped_cancelled == 4  # 2 purged, 2 refused


async def test_writer_checks_again_at_the_last_moment() -> None:
    queue = OutboundQueue()
    queue.push(item(Kind.CONTENT, "t1", "assistant_delta"))
    queue._cancelled["t1"] = None  # cancelled without a purge (e.g. between push and get)
    queue.push(item(Kind.CONTROL, "", "after"))
    assert [o.envelope.request.action_name for o in await take_all(queue)] == ["after"]


async def test_full_queue_drops_stale_audio_first_then_refuses() -> None:
    queue = OutboundQueue(max_frames=4, max_bytes=1 << 20)
    queue.push(item(Kind.AUDIO, "old", audio_bytes=4096))
    queue.push(item(Kind.AUDIO, "old", audio_bytes=4096))
    queue.push(item(Kind.CONTENT, "new", "assistant_delta"))
    queue.push(item(Kind.AUDIO, "new", audio_bytes=4096))
    queue.push(item(Kind.AUDIO, "new", audio_bytes=4096))  # full: the old turn's audio goes
    assert queue.dropped_stale == 2 and len(queue) == 3
    queue.push(item(Kind.CONTROL, "", "x"))
    with pytest.raises(SlowClientError, match=r"slow client: 4 frames / \d+ bytes queued \(limits 4 frames"):
        queue.push(item(Kind.AUDIO, "new", audio_bytes=4096))


async def test_byte_bound_counts_audio() -> None:
    queue = OutboundQueue(max_frames=100, max_bytes=20_000)
    queue.push(item(Kind.AUDIO, "t", audio_bytes=16384))
    with pytest.raises(SlowClientError):
        queue.push(item(Kind.AUDIO, "t", audio_bytes=16384))


async def test_get_waits_for_a_push() -> None:
    queue = OutboundQueue()
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    queue.push(item(Kind.CONTROL, "", "x"))
    assert (await asyncio.wait_for(waiter, 1)).envelope.request.action_name == "x"


def event(turn: str, **kind: object) -> dpb.ConverseResponse:
    return dpb.ConverseResponse(turn_id=turn, **kind)  # type: ignore[arg-type]


def test_translator_maps_every_event_with_turn_id() -> None:
    t = EventTranslator("phone", perolink_v1=False)  # a PeroMesh client (PeroLink v1: test_perocore_v1.py)
    out = []
    for e in (event("s#1", state_update=dpb.StateUpdate(state=dpb.STATE_THINKING)),
              event("s#1", assistant_delta=dpb.AssistantDelta(text_delta="Hi")),
              event("s#1", audio_begin=dpb.AudioBegin(mime="audio/pcm;rate=24000;channels=1",
                                                        sample_rate_hertz=24000, channels=1)),
              event("s#1", audio_chunk=dpb.AudioChunk(seq=0, pcm=bytes(40_000))),
              event("s#1", assistant_final=dpb.AssistantFinal(text="Hi", heard_text="Hi")),
              event("s#1", audio_end=dpb.AudioEnd(chunk_count=1)),
              event("s#1", metrics=dpb.TurnMetrics(t_first_delta_ms=12.345, tokens=1)),
              event("s#1", transcription=dpb.Transcription(text="hello", is_final=True)),
              event("s#1", tool_call=dpb.ToolCall(call_id="c", name="add_reminder", arguments_json="{}")),
              event("s#1", error=dpb.ErrorEvent(code="INTERNAL", message="x"))):
        out += t.translate(e)
    requests = [o.envelope for o in out if o.envelope.HasField("request")]
    assert [r.request.action_name for r in requests] == [
        "state_update", "assistant_delta", "audio_begin", "assistant_final", "audio_end", "metrics", "transcription",
        "tool_call", "error"]
    assert all(r.request.params["turn_id"] == "s#1" and r.target_id == "phone" for r in requests)
    assert requests[0].request.params == {"turn_id": "s#1", "state": "thinking"}
    assert requests[3].request.params["text"] == "Hi" and requests[5].request.params["t_first_delta_ms"] == "12.345"
    assert requests[7].request.params["name"] == "add_reminder"
    streams = [o.envelope.stream for o in out if o.envelope.HasField("stream")]
    assert [len(s.data) for s in streams] == [16384, 16384, 40_000 - 32768, 0]  # split to ≤16 KiB, then the end
    assert [s.seq for s in streams] == [0, 1, 2, 3] and [s.is_end for s in streams] == [False] * 3 + [True]
    assert {s.stream_id for s in streams} == {"s#1"} and {s.turn_id for s in streams} == {"s#1"}
    assert {s.content_type for s in streams} == {"audio/pcm;rate=24000;channels=1"}
    kinds = {o.envelope.request.action_name: o.kind for o in out if o.envelope.HasField("request")}
    assert kinds["assistant_delta"] is Kind.CONTENT and kinds["assistant_final"] is Kind.CLOSING


def test_audio_cancel_is_control_and_resets_numbering() -> None:
    t = EventTranslator("phone", perolink_v1=False)
    t.translate(event("a", audio_begin=dpb.AudioBegin(sample_rate_hertz=24000)))
    [chunk] = t.translate(event("a", audio_chunk=dpb.AudioChunk(pcm=bytes(4096))))
    [cancel] = t.translate(event("a", audio_cancel=dpb.AudioCancel(chunks_sent=1)))
    assert chunk.kind is Kind.AUDIO and cancel.kind is Kind.CONTROL
    assert cancel.envelope.request.params == {"turn_id": "a", "chunks_sent": "1"}
