"""The one outbound point of a WebSocket connection: a bounded queue with barge-in.

Every frame for the client passes through one `OutboundQueue` (the
connection writes a frame at once only while nothing is queued or being
sent, after the same `admit` check). Two rules are enforced here, not hoped
for from producers:

Barge-in. Once a turn is cancelled (`cancel_turn`, on the core's
audio_cancel), no content of that turn — text deltas, audio, audio
begin/end, transcripts, tool events — is delivered any more: what is still
queued is purged, what arrives later is dropped, and the writer checks again
just before sending. Only the turn's closing summary (assistant_final with
interrupted=true, metrics, state_update, and PeroLink v1's voice_update,
text_response and new_message) may follow its audio_cancel, so a client can
record what was heard.

Slow clients. The queue is bounded by frames and bytes. When a push would
exceed a bound, queued audio of turns other than the current one (stale
audio nobody will hear in time) is dropped first; if that is not enough the
push raises `SlowClientError` and the connection is closed with code 1008
and the reason. A client that stops reading is never waited for.
"""

from __future__ import annotations

import asyncio
import collections
import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from peromesh.gateway.v1 import envelope_pb2 as gw

DEFAULT_MAX_FRAMES = 1024
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
_REMEMBERED_CANCELLED = 64


class Kind(enum.Enum):
    CONTROL = "control"  # responses, heartbeats, routed messages, audio_cancel, errors
    CLOSING = "closing"  # a turn's summary: may follow its audio_cancel
    CONTENT = "content"  # a turn's text/events: never after its audio_cancel
    AUDIO = "audio"  # a turn's audio chunks: content, and the first thing dropped when stale


@dataclass(slots=True)
class Outbound:
    """One frame to send, with what the queue needs to know about it."""

    envelope: gw.Envelope
    kind: Kind = Kind.CONTROL
    turn_id: str = ""
    size: int = field(default=0)
    shared: object = None  # the hub's message object when many connections get the same one (frame cache key)
    written: Callable[[], None] | None = None  # called once the writer sent it (bridge/reminder_acks.py)

    def __post_init__(self) -> None:
        if not self.size:
            self.size = 256 + (len(self.envelope.stream.data) if self.kind is Kind.AUDIO else 0)


class SlowClientError(Exception):
    """The client does not read fast enough; the connection must close with this reason."""


class OutboundQueue:
    def __init__(self, max_frames: int = DEFAULT_MAX_FRAMES, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.current_turn = ""
        self.dropped_stale = 0
        self.dropped_cancelled = 0
        self._items: collections.deque[Outbound] = collections.deque()
        self._bytes = 0
        self._cancelled: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def push(self, item: Outbound) -> None:
        """Queue `item` (or drop it if its turn was cancelled); raises SlowClientError when full."""
        if not self.admit(item):
            return
        if self._over(item) and (self._drop_stale_audio() == 0 or self._over(item)):
            raise SlowClientError(
                f"slow client: {len(self._items)} frames / {self._bytes} bytes queued "
                f"(limits {self.max_frames} frames / {self.max_bytes} bytes)")
        self._items.append(item)
        self._bytes += item.size
        self._ready.set()

    def admit(self, item: Outbound) -> bool:
        """The barge-in check for a frame about to be queued or written: False drops it."""
        if self.blocked(item):
            self.dropped_cancelled += 1
            return False
        if item.turn_id and item.kind is not Kind.CONTROL:
            self.current_turn = item.turn_id
        return True

    async def get(self) -> Outbound:
        """The next frame that may still be sent (barge-in is checked here, at the last moment)."""
        while True:
            while not self._items:
                self._ready.clear()
                await self._ready.wait()
            item = self._items.popleft()
            self._bytes -= item.size
            if not self.blocked(item):
                return item
            self.dropped_cancelled += 1

    def cancel_turn(self, turn_id: str) -> int:
        """Stop every later content frame of `turn_id` and purge the queued ones; returns how many."""
        self._cancelled[turn_id] = None
        while len(self._cancelled) > _REMEMBERED_CANCELLED:
            self._cancelled.popitem(last=False)
        purged = self._remove(lambda item: item.turn_id == turn_id and _is_content(item))
        self.dropped_cancelled += purged
        return purged

    def is_cancelled(self, turn_id: str) -> bool:
        return turn_id in self._cancelled

    def blocked(self, item: Outbound) -> bool:
        return _is_content(item) and item.turn_id in self._cancelled

    def _over(self, item: Outbound) -> bool:
        return len(self._items) + 1 > self.max_frames or self._bytes + item.size > self.max_bytes

    def _drop_stale_audio(self) -> int:
        current = self.current_turn
        dropped = self._remove(lambda item: item.kind is Kind.AUDIO and item.turn_id != current)
        self.dropped_stale += dropped
        return dropped

    def _remove(self, predicate: Callable[[Outbound], bool]) -> int:
        kept = [item for item in self._items if not predicate(item)]
        removed = len(self._items) - len(kept)
        if removed:
            self._items = collections.deque(kept)
            self._bytes = sum(item.size for item in kept)
        return removed

    def __iter__(self) -> Iterator[Outbound]:
        return iter(list(self._items))


def _is_content(item: Outbound) -> bool:
    return item.kind is Kind.CONTENT or item.kind is Kind.AUDIO
