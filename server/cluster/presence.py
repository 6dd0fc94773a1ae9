"""Node presence in Redis: which core holds which node, with expiry.

Each core rewrites the records of its attached nodes every refresh (records.py: a key with a
TTL plus its expiry in one sorted set). A node that leaves is deleted at once by its core; a
core that dies stops refreshing, and its records expire after `ttl_ms`, so every other core
forgets them without being told.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import redis.asyncio as aioredis

from peromesh.hub.v1 import hub_service_pb2 as pb
from server.cluster.keys import ClusterKeys
from server.cluster.records import RecordTable


@dataclass(frozen=True)
class Presence:
    """One node as the cluster sees it: the core holding it and its record."""

    core_id: str
    node: pb.Node


class PresenceTable:
    def __init__(self, client: aioredis.Redis, keys: ClusterKeys, core_id: str, ttl_ms: int) -> None:
        self._records = RecordTable(client, keys.presence, keys.node, core_id)
        self._ttl_ms = ttl_ms

    async def write(self, nodes: Iterable[pb.Node]) -> None:
        """(Re)write our nodes' records with a fresh expiry; one round trip."""
        await self._records.write({node.node_id: node.SerializeToString() for node in nodes}, self._ttl_ms)

    async def remove(self, node_id: str) -> None:
        """Delete the node's record while it is still ours (it may have moved to another core)."""
        await self._records.remove(node_id)

    async def read(self) -> dict[str, Presence]:
        """Every node of the cluster whose record has not expired (ours included)."""
        return {node_id: Presence(r.core_id, pb.Node.FromString(r.value))
                for node_id, r in (await self._records.read()).items()}
