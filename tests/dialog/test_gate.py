"""The outbound gate's hand-over: a data event reaches a waiting reader before its producer goes on."""

from __future__ import annotations

import asyncio

import pytest

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.dialog import events
from server.dialog.gate import OutboundGate


async def _read_into(gate: OutboundGate, seen: list[str], busy_s: float = 0.0) -> None:
    async for event in gate.events():
        seen.append(f"read {event.assistant_delta.text_delta or event.WhichOneof('event')}")
        if busy_s:
            await asyncio.sleep(busy_s)  # as gRPC takes a while to accept each message


async def test_send_hands_the_event_to_a_waiting_reader_before_the_producer_goes_on() -> None:
    gate = OutboundGate()
    seen: list[str] = []
    reader = asyncio.create_task(_read_into(gate, seen, busy_s=0.05))
    await asyncio.sleep(0)  # the reader is waiting for the first event
    await gate.send(events.delta("t#1", "first"))
    seen.append("producer goes on")
    await gate.send(events.delta("t#1", "second"))  # the reader is still busy with the first: no yield
    seen.append("producer goes on")
    gate.end()
    await asyncio.wait_for(reader, 1)
    assert seen == ["read first", "producer goes on", "producer goes on", "read second"]


async def test_a_producer_cancelled_at_the_hand_over_leaves_its_event_to_the_gate() -> None:
    gate = OutboundGate()
    seen: list[str] = []
    reader = asyncio.create_task(_read_into(gate, seen))
    await asyncio.sleep(0)
    producer = asyncio.create_task(gate.send(events.delta("t#1", "queued")))
    await asyncio.sleep(0)  # the producer queued its event and yields to the reader
    producer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await producer
    gate.close_turn("t#2")
    await gate.send(events.delta("t#2", "dropped"))  # a closed turn's data never passes
    gate.emit(events.state("t#2", pb.STATE_INTERRUPTED))
    gate.end()
    await asyncio.wait_for(reader, 1)
    assert seen == ["read queued", "read state_update"] and gate.dropped == 1 and gate.queued == 0


async def test_a_reader_cancelled_while_waiting_does_not_break_later_producers() -> None:
    gate = OutboundGate()
    first = asyncio.create_task(_read_into(gate, []))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(gate.send(events.delta("t#1", "later")), 1)  # nobody waits: no hand-over
    seen: list[str] = []
    gate.end()
    await asyncio.wait_for(_read_into(gate, seen), 1)
    assert seen == ["read later"] and gate.peak == 2


async def test_deltas_queued_behind_one_another_go_out_as_one_message_in_order() -> None:
    gate = OutboundGate()
    for text in ("Hel", "lo", " there"):
        await gate.send(events.delta("t#1", text))
    gate.emit(events.state("t#1", pb.STATE_IDLE))
    await gate.send(events.delta("t#2", "next"))
    await gate.send(events.delta("t#3", "other turn"))  # never joined across turns
    gate.end()
    seen = [(e.turn_id, e.WhichOneof("event"), e.assistant_delta.text_delta) async for e in gate.events()]
    assert seen == [("t#1", "assistant_delta", "Hello there"), ("t#1", "state_update", ""),
                    ("t#2", "assistant_delta", "next"), ("t#3", "assistant_delta", "other turn")]
    assert gate.coalesced == 2


async def test_a_reader_that_keeps_up_gets_every_token_as_its_own_message() -> None:
    gate = OutboundGate()
    seen: list[str] = []
    reader = asyncio.create_task(_read_into(gate, seen))
    await asyncio.sleep(0)
    for text in ("a", "b", "c"):
        await gate.send(events.delta("t#1", text))
    gate.end()
    await asyncio.wait_for(reader, 1)
    assert seen == ["read a", "read b", "read c"] and gate.coalesced == 0
