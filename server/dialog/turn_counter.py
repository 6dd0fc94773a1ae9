"""Turn numbers per session, unique across concurrent streams of one process.

Bounded: the last number is kept for sessions with an open stream, and for
at most `max_idle` sessions without one (least recently closed out). A
forgotten session reloads its number from the history, which is exact then:
a stream's teardown waits until its turns have stored their rows, so a
session without open streams has nothing in flight.

Shared history (several cores on one database, `HistoryStore.shared`): the
database allocates every number (`HistoryStore.allocate_turn`), so two cores
serving one session at once never hand out the same one. A number that is not
the one after this process's last means another core answered turns in
between: the session's cached context is dropped and read again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from server.dialog.history import HistoryStore


class TurnCounter:
    def __init__(self, history: HistoryStore, max_idle: int = 1024) -> None:
        self._history = history
        self.max_idle = max_idle
        self._last: dict[str, int] = {}
        self._streams: dict[str, int] = {}  # open streams per session
        self._idle: OrderedDict[str, None] = OrderedDict()  # known sessions without a stream, oldest first
        self._lock = asyncio.Lock()

    def open(self, session_id: str) -> None:
        """A stream of `session_id` starts: its number is kept until `close`."""
        self._streams[session_id] = self._streams.get(session_id, 0) + 1
        self._idle.pop(session_id, None)

    def close(self, session_id: str) -> None:
        """A stream of `session_id` has ended (after its turns are stored)."""
        left = self._streams.get(session_id, 0) - 1
        if left > 0:
            self._streams[session_id] = left
            return
        self._streams.pop(session_id, None)
        if session_id in self._last:
            self._went_idle(session_id)

    def _went_idle(self, session_id: str) -> None:
        self._idle[session_id] = None
        self._idle.move_to_end(session_id)
        while len(self._idle) > self.max_idle:
            forgotten, _ = self._idle.popitem(last=False)
            self._last.pop(forgotten, None)

    @property
    def known(self) -> int:
        """Sessions whose number is held in memory (for the bound tests)."""
        return len(self._last)

    async def next(self, session_id: str) -> int:
        if self._history.shared:
            return await self._allocated(session_id)
        async with self._lock:
            if session_id not in self._last:
                self._last[session_id] = await self._history.last_turn_index(session_id)
            self._last[session_id] += 1
            if session_id not in self._streams:  # numbered without a stream: bounded like a closed one
                self._went_idle(session_id)
            return self._last[session_id]

    async def _allocated(self, session_id: str) -> int:
        index = await self._history.allocate_turn(session_id)
        if self._last.get(session_id) != index - 1:
            self._history.forget(session_id)  # turns we did not number: our cached context missed them
        self._last[session_id] = max(index, self._last.get(session_id, 0))
        if session_id not in self._streams:
            self._went_idle(session_id)
        return index
