"""Turn numbers per session, unique across concurrent streams of one process."""

from __future__ import annotations

import asyncio

from server.dialog.history import HistoryStore


class TurnCounter:
    def __init__(self, history: HistoryStore) -> None:
        self._history = history
        self._last: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def next(self, session_id: str) -> int:
        async with self._lock:
            if session_id not in self._last:
                self._last[session_id] = await self._history.count_turns(session_id)
            self._last[session_id] += 1
            return self._last[session_id]
