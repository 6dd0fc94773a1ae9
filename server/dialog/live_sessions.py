"""The live Converse sessions of this core, and speaking on them (announcements).

Kept apart from the servicer so that what announces (reminder delivery,
broadcasts, late NIT results) can be built before the dialog servicer and
handed this object in its constructor: no late lookup, no start-order trick.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

from server.dialog.session import ConverseSession


class LiveSessions:
    def __init__(self) -> None:
        self._sessions: set[ConverseSession] = set()

    def add(self, session: ConverseSession) -> None:
        self._sessions.add(session)

    def discard(self, session: ConverseSession) -> None:
        self._sessions.discard(session)

    def __iter__(self) -> Iterator[ConverseSession]:
        return iter(list(self._sessions))

    def __len__(self) -> int:
        return len(self._sessions)

    async def announce(self, text: str, device_ids: Sequence[str] = (), exclude: Collection[str] = ()) -> int:
        """Speak `text` on every live session (or those of `device_ids`), none of a device in
        `exclude` (reminder delivery speaks on those itself); returns how many."""
        spoken = 0
        for session in list(self._sessions):
            if session.config is None or (device_ids and session.config.device_id not in device_ids):
                continue
            if session.config.device_id in exclude:
                continue
            if await session.announce(text):
                spoken += 1
        return spoken
