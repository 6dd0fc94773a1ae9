"""The one place every outbound Converse event passes: the barge-in gate.

Producers (LLM, TTS, the session) enqueue events; the response generator
dequeues them and asks the gate before yielding each. Once a turn is closed
(interrupted), only its terminal events may pass (audio_cancel,
assistant_final, metrics, state_update, error). Because the check happens at
the last moment before the event is handed to gRPC, events that were already
queued when the interrupt arrived are dropped too — producers do not need to
stop in time for the guarantee to hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from peromesh.dialog.v1 import dialog_service_pb2 as pb

TERMINAL_KINDS = frozenset({"audio_cancel", "assistant_final", "metrics", "state_update", "error"})
_CLOSE = object()


class OutboundGate:
    def __init__(self, on_delivered: Callable[[pb.ConverseResponse], None] | None = None) -> None:
        self._queue: asyncio.Queue[pb.ConverseResponse | object] = asyncio.Queue()
        self._closed_turns: set[str] = set()
        self._on_delivered = on_delivered
        self.dropped = 0

    def emit(self, event: pb.ConverseResponse) -> None:
        self._queue.put_nowait(event)

    def close_turn(self, turn_id: str) -> None:
        """From now on, only terminal events of `turn_id` are delivered."""
        self._closed_turns.add(turn_id)

    def is_closed(self, turn_id: str) -> bool:
        return turn_id in self._closed_turns

    def allows(self, event: pb.ConverseResponse) -> bool:
        if event.turn_id not in self._closed_turns:
            return True
        return event.WhichOneof("event") in TERMINAL_KINDS

    def end(self) -> None:
        """No more events: the stream completes after what is queued."""
        self._queue.put_nowait(_CLOSE)

    async def events(self) -> AsyncIterator[pb.ConverseResponse]:
        while (item := await self._queue.get()) is not _CLOSE:
            assert isinstance(item, pb.ConverseResponse)
            if not self.allows(item):
                self.dropped += 1
                continue
            if self._on_delivered:
                self._on_delivered(item)
            yield item
