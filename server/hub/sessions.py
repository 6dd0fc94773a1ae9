"""Device → dialog session, kept for a grace window after a disconnect.

A device that reconnects inside the window gets its old session id back (so
the dialog continues with the same history); later it starts a new one.

In a cluster (`--cluster-url`) the device may come back through another core:
the directory then asks `shared` (the cluster's resume records, kept in Redis
with the grace as expiry by server/cluster/sessions.py) for a device it does
not know itself. Without a cluster `shared` is None and this process's memory
is the whole truth.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Protocol


class SharedSessions(Protocol):
    def lookup(self, device_id: str) -> str | None:
        """The device's session id while another core holds it or it left one inside the grace window."""


@dataclass
class _Entry:
    session_id: str
    attached: int = 0  # live attachments of the device (0, or 1 while a replacement overlaps)
    left_at: float = 0.0


class SessionDirectory:
    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.shared: SharedSessions | None = None  # the other cores' resume state (a cluster)
        self._entries: dict[str, _Entry] = {}

    def claim(self, device_id: str) -> tuple[str, bool]:
        """The device's session id and whether it was resumed (attached or inside the grace window)."""
        self.expire()
        entry = self._entries.get(device_id)
        resumed = entry is not None
        if entry is None:
            elsewhere = self.shared.lookup(device_id) if self.shared is not None else None
            resumed = elsewhere is not None
            entry = self._entries[device_id] = _Entry(elsewhere or uuid.uuid4().hex)
        entry.attached += 1
        return entry.session_id, resumed

    def release(self, device_id: str) -> None:
        """The device detached once; its grace window starts when none is left."""
        entry = self._entries.get(device_id)
        if entry is not None:
            entry.attached = max(0, entry.attached - 1)
            entry.left_at = time.monotonic()

    def expire(self) -> None:
        limit = time.monotonic() - self.grace_s
        for device_id in [d for d, e in self._entries.items() if not e.attached and e.left_at < limit]:
            del self._entries[device_id]
