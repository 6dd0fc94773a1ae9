"""The one place every outbound Converse event passes: the barge-in gate.

Producers (LLM, TTS, the session) enqueue events; the response generator
dequeues them and asks the gate before yielding each. Once a turn is closed
(interrupted), only its terminal events may pass (audio_cancel,
assistant_final, metrics, state_update, error). Because the check happens at
the last moment before the event is handed to gRPC, events that were already
queued when the interrupt arrived are dropped too — producers do not need to
stop in time for the guarantee to hold. Of a closed turn's `state_update`s only
the terminal ones (IDLE, INTERRUPTED) pass: a SPEAKING produced while the turn
was being torn down never reaches the client.

Text deltas already queued behind one another are sent as one message
(`_coalesced`): never for a reader that keeps up, so streaming is per token
until the server or client falls behind.

Bounded, with backpressure: data events (text deltas, audio chunks) go
through `await send()`, which waits while `capacity` events are queued — a
client that reads slowly (a direct gRPC reader behind HTTP/2 flow control)
slows its turn's producers down instead of growing the queue. Control events
(`emit()`) never wait, so an interrupt is never stuck behind audio; they are
few per turn, and the session's reader waits for `writable()` before taking
a new request, so the queue stays below capacity + a handful (`peak` shows it).
The set of closed turns is bounded the same way: only turns whose events can
still be queued matter, and at most `capacity` + a handful of events are.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.failpoints import failpoint

TERMINAL_KINDS = frozenset({"audio_cancel", "assistant_final", "metrics", "state_update", "error"})
TERMINAL_STATES = frozenset({pb.STATE_IDLE, pb.STATE_INTERRUPTED})
DEFAULT_CAPACITY = 256  # events; audio chunks are 4-16 KiB, so at most ~4 MiB per stream


class OutboundGate:
    """One stream's outbound events, in order, for its one reader (`events()`)."""

    def __init__(self, on_delivered: Callable[[pb.ConverseResponse], None] | None = None,
                 capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        # A deque and the reader's own future rather than an asyncio.Queue: the queue's getter
        # bookkeeping is per message, and `send()` needs to know whether the reader is waiting.
        self._items: deque[pb.ConverseResponse | None] = deque()  # None: the end of the stream
        self._reader: asyncio.Future[None] | None = None  # set while events() waits for an item
        self._space = asyncio.Event()
        self._space.set()
        self._closed_turns: OrderedDict[str, None] = OrderedDict()
        self._max_closed = capacity + 64
        self._on_delivered = on_delivered
        self.dropped = 0
        self.coalesced = 0  # text deltas joined onto the one before them (a reader that fell behind)
        self.peak = 0  # the most events ever queued at once (the bound tests check)

    @property
    def queued(self) -> int:
        return len(self._items)

    def emit(self, event: pb.ConverseResponse) -> None:
        """Queue a control event now (never waits; see the module docstring for the bound)."""
        self._put(event)

    async def send(self, event: pb.ConverseResponse) -> None:
        """Queue a data event, waiting while the queue is at capacity (backpressure).

        Cancellable while waiting; the event is then not queued. When the reader was waiting for
        it, the producer yields once, so the event is handed to gRPC before the producer's next
        step (the next token, the next chunk) runs: the first delta of a turn is on the wire
        without waiting for the model loop to reach its next await. A cancel landing on that
        yield leaves the event queued, for the gate to pass or drop like any other."""
        if len(self._items) >= self.capacity:
            await self.writable()
        if self._put(event):
            await asyncio.sleep(0)

    async def writable(self) -> None:
        """Return once fewer than `capacity` events are queued."""
        while len(self._items) >= self.capacity:
            self._space.clear()
            await self._space.wait()

    def _put(self, item: pb.ConverseResponse | None) -> bool:
        """Queue `item`; True when that woke the waiting reader."""
        items = self._items
        items.append(item)
        if len(items) > self.peak:
            self.peak = len(items)
        reader, self._reader = self._reader, None
        if reader is None or reader.done():
            return False
        reader.set_result(None)
        return True

    def close_turn(self, turn_id: str) -> None:
        """From now on, only terminal events of `turn_id` are delivered."""
        self._closed_turns[turn_id] = None
        while len(self._closed_turns) > self._max_closed:
            self._closed_turns.popitem(last=False)

    def is_closed(self, turn_id: str) -> bool:
        return turn_id in self._closed_turns

    def allows(self, event: pb.ConverseResponse) -> bool:
        if event.turn_id not in self._closed_turns:
            return True
        kind = event.WhichOneof("event")
        if kind == "state_update":
            return event.state_update.state in TERMINAL_STATES
        return kind in TERMINAL_KINDS

    def end(self) -> None:
        """No more events: the stream completes after what is queued."""
        self._put(None)

    def _coalesced(self, delta: pb.ConverseResponse) -> pb.ConverseResponse:
        """`delta` and the text deltas of its turn queued right behind it, as one message.

        Only what is already waiting is joined: a reader that keeps up gets every token as its
        own message, unchanged; one that falls behind (a loaded server, a slow client) gets the
        same text in fewer messages, so each message's cost (ours, gRPC's, the client's) is paid
        once per backlog instead of once per token. Order is kept: a delta is joined only with
        deltas of its turn that directly follow it."""
        items = self._items
        parts = [delta.assistant_delta.text_delta]
        while items and (nxt := items[0]) is not None and nxt.turn_id == delta.turn_id \
                and nxt.HasField("assistant_delta"):
            parts.append(items.popleft().assistant_delta.text_delta)  # type: ignore[union-attr]
        if len(parts) == 1:
            return delta
        self.coalesced += len(parts) - 1
        if len(items) < self.capacity:
            self._space.set()
        return pb.ConverseResponse(turn_id=delta.turn_id, assistant_delta=pb.AssistantDelta(text_delta="".join(parts)))

    async def events(self) -> AsyncIterator[pb.ConverseResponse]:
        """The events that pass the gate, in order, until `end()` (one reader per gate)."""
        items = self._items
        loop = asyncio.get_running_loop()
        while True:
            if not items:
                self._reader = waiter = loop.create_future()
                try:
                    await waiter
                finally:
                    if self._reader is waiter:
                        self._reader = None
                continue
            item = items.popleft()
            if item is None:
                return
            if len(items) < self.capacity:
                self._space.set()
            if not self.allows(item):
                self.dropped += 1
                continue
            if items and item.HasField("assistant_delta"):
                item = self._coalesced(item)
            if self._on_delivered:
                self._on_delivered(item)
            yield item  # returns once gRPC has taken the message
            if item.HasField("assistant_final"):
                failpoint("turn.after_final")
