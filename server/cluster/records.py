"""Records with expiry that one core owns and every core lists: the shape of presence and of
resume state.

A record is a key `"<core id>:<value>"` with a TTL plus its expiry time in one sorted set, so
listing is one range read (not a SCAN) and a core that dies stops refreshing its records,
which then expire without anyone being told. A core changes or deletes a record only while it
is still its own: a node (and its session) may have moved to another core meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis

# ARGV: owner prefix, member, ttl ms (0: delete), expiry ms. Acts only while the record is the owner's.
_IF_OURS = """
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, string.len(ARGV[1])) == ARGV[1] then
  if ARGV[3] == '0' then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[2], ARGV[2])
  else
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
  end
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Record:
    core_id: str  # the core that wrote it
    value: bytes
    expires_ms: int  # wall clock (ms since the epoch), as every core of the cluster reads it


class RecordTable:
    """One kind of record: `index` is the sorted set, `key_of(member)` each record's key."""

    def __init__(self, client: aioredis.Redis, index: str, key_of: Callable[[str], str], core_id: str) -> None:
        self._client = client
        self._index = index
        self._key_of = key_of
        self._owner = f"{core_id}:"
        self._if_ours = client.register_script(_IF_OURS)

    async def write(self, values: Mapping[str, bytes], ttl_ms: int) -> None:
        """(Re)write our records with a fresh expiry; one round trip."""
        if not values:
            return
        expires = now_ms() + ttl_ms
        pipe = self._client.pipeline(transaction=False)
        for member, value in values.items():
            pipe.set(self._key_of(member), self._owner.encode() + value, px=ttl_ms)
            pipe.zadd(self._index, {member: expires})
        await pipe.execute()

    async def remove(self, member: str) -> None:
        """Delete the record if it is still ours."""
        await self._if_ours(keys=[self._key_of(member), self._index], args=[self._owner, member, 0, 0])

    async def keep_for(self, member: str, ttl_ms: int) -> None:
        """Let the record (if still ours) live `ttl_ms` from now, then expire."""
        await self._if_ours(keys=[self._key_of(member), self._index],
                            args=[self._owner, member, max(1, ttl_ms), now_ms() + ttl_ms])

    async def read(self) -> dict[str, Record]:
        """Every record that has not expired (ours included)."""
        now = now_ms()
        await self._client.zremrangebyscore(self._index, "-inf", now)
        listed = await self._client.zrangebyscore(self._index, now, "+inf", withscores=True)
        if not listed:
            return {}
        members = [(_text(item[0]), int(item[1])) for item in listed]
        values = await self._client.mget([self._key_of(m) for m, _ in members])
        out: dict[str, Record] = {}
        for (member, expires), value in zip(members, values, strict=True):
            if value is None:
                continue  # expired between the two reads
            core_id, _, payload = (value if isinstance(value, bytes) else str(value).encode()).partition(b":")
            out[member] = Record(core_id.decode(), payload, expires)
        return out


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def now_ms() -> int:
    return time.time_ns() // 1_000_000
