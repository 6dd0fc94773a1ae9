"""Node presence in Redis: which core holds which node, with expiry.

Each core rewrites the records of its attached nodes every refresh (a key with a TTL plus
its expiry time in one sorted set, so listing is one range read, not a SCAN). A node that
leaves is deleted at once by its core; a core that dies stops refreshing, and its records
expire after `ttl_ms`, so every other core forgets them without being told.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis.asyncio as aioredis

from peromesh.hub.v1 import hub_service_pb2 as pb
from server.cluster.keys import ClusterKeys

# Delete a node's record only while it is still ours (the node may have moved to another core).
_DELETE_IF_OURS = """
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Presence:
    """One node as the cluster sees it: the core holding it and its record."""

    core_id: str
    node: pb.Node


class PresenceTable:
    def __init__(self, client: aioredis.Redis, keys: ClusterKeys, core_id: str, ttl_ms: int) -> None:
        self._client = client
        self._keys = keys
        self._core_id = core_id
        self._ttl_ms = ttl_ms
        self._delete = client.register_script(_DELETE_IF_OURS)

    async def write(self, nodes: Iterable[pb.Node]) -> None:
        """(Re)write our nodes' records with a fresh expiry; one round trip."""
        expires = _now_ms() + self._ttl_ms
        pipe = self._client.pipeline(transaction=False)
        for node in nodes:
            pipe.set(self._keys.node(node.node_id), self._record(node), px=self._ttl_ms)
            pipe.zadd(self._keys.presence, {node.node_id: expires})
        await pipe.execute()

    async def remove(self, node_id: str) -> None:
        await self._delete(keys=[self._keys.node(node_id), self._keys.presence],
                           args=[f"{self._core_id}:", node_id])

    async def read(self) -> dict[str, Presence]:
        """Every node of the cluster whose record has not expired (ours included)."""
        now = _now_ms()
        await self._client.zremrangebyscore(self._keys.presence, "-inf", now)
        ids = [_text(i) for i in await self._client.zrangebyscore(self._keys.presence, now, "+inf")]
        if not ids:
            return {}
        out: dict[str, Presence] = {}
        for node_id, value in zip(ids, await self._client.mget([self._keys.node(i) for i in ids]), strict=True):
            if value is None:
                continue  # expired between the two reads
            core_id, _, record = (value if isinstance(value, bytes) else str(value).encode()).partition(b":")
            out[node_id] = Presence(core_id.decode(), pb.Node.FromString(record))
        return out

    def _record(self, node: pb.Node) -> bytes:
        return self._core_id.encode() + b":" + node.SerializeToString()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
