"""Resume state cluster-wide: the session each device has, in Redis with the grace as expiry.

The hub's SessionDirectory (server/hub/sessions.py) knows the devices attached to this core
and those that left it inside the grace window. A device that comes back through another
bridge may land on another core; that core finds its session here (`lookup`), so the dialog
continues with the same session id and history.

- Attached devices: their records are rewritten with every presence refresh, living
  `grace + presence ttl`, so a core killed with -9 leaves them resumable for the grace window
  counted from (about) its death.
- A device that leaves: its record (if still ours: it may already be attached elsewhere) is
  kept for exactly the grace window, then expires.
- Lookups are synchronous (the hub's join is): every core keeps a mirror, re-read with
  presence on every change announcement and refresh, so a device's record reaches the other
  cores within milliseconds of its attach, long before it could reconnect anywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis

from server.cluster.keys import ClusterKeys
from server.cluster.records import Record, RecordTable, now_ms


class ClusterSessions:
    """Implements server.hub.sessions.SharedSessions; HubClusterLink writes and re-reads it."""

    def __init__(self, client: aioredis.Redis, keys: ClusterKeys, core_id: str, grace_s: float,
                 refresh_ttl_ms: int) -> None:
        self._records = RecordTable(client, keys.sessions, keys.session, core_id)
        self.grace_ms = int(grace_s * 1000)
        self._attached_ttl_ms = self.grace_ms + refresh_ttl_ms
        self._mirror: dict[str, Record] = {}

    def lookup(self, device_id: str) -> str | None:
        record = self._mirror.get(device_id)
        if record is None or record.expires_ms <= now_ms():
            return None
        return record.value.decode()

    async def attached(self, sessions: Mapping[str, str]) -> None:
        """Device → session of every device attached here now (a refresh of their records)."""
        await self._records.write({d: s.encode() for d, s in sessions.items()}, self._attached_ttl_ms)

    async def left(self, device_id: str) -> None:
        """The device left this core: its session stays resumable anywhere for the grace window."""
        await self._records.keep_for(device_id, self.grace_ms)

    async def read(self) -> None:
        """Re-read every core's records into the mirror."""
        self._mirror = await self._records.read()
