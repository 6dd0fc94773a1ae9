"""Trimming Redis streams without losing anything: only below every consumer group's acknowledged position.

`XADD MAXLEN ~N` deletes the oldest entries whatever the groups have read, so a
consumer that is down for a while (or simply slow) loses events. Here a
stream is trimmed with `XTRIM MINID` to the lowest id any group still needs:
its oldest pending (delivered, unacknowledged) entry, or else the entry after
its last-delivered one. A stream with no group is never trimmed (nobody has
said what it has read). The group state is read before the pending lists, and
groups only move forward, so a position seen here is never ahead of the truth.

A stalled group therefore grows its stream; `StreamBacklog` is what it still
has to work through, for the operator to see.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamBacklog:
    """One group's view of one stream."""

    stream: str
    group: str
    pending: int  # delivered, not acknowledged
    lag: int | None  # not yet delivered (Redis 7 knows it; None where it cannot tell)


def _parse(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _after(entry_id: str) -> tuple[int, int]:
    ms, seq = _parse(entry_id)
    return (ms, seq + 1) if seq < 2**64 - 1 else (ms + 1, 0)


async def safe_min_id(client: Any, stream: str) -> str | None:
    """The lowest entry id some group of `stream` still needs; None: no group (do not trim)."""
    groups = await client.xinfo_groups(stream)
    if not groups:
        return None
    needed: list[tuple[int, int]] = []
    for group in groups:
        needed.append(_after(str(group["last-delivered-id"])))
        if int(group["pending"]):
            summary = await client.xpending(stream, group["name"])
            if summary["pending"] and summary["min"]:
                needed.append(_parse(str(summary["min"])))
    ms, seq = min(needed)
    return f"{ms}-{seq}"


async def trim_acknowledged(client: Any, stream: str) -> int:
    """Delete the entries every group of `stream` has acknowledged; returns how many."""
    if not await client.exists(stream):
        return 0
    min_id = await safe_min_id(client, stream)
    if min_id is None:
        return 0
    removed = int(await client.xtrim(stream, minid=min_id, approximate=False))
    if removed:
        log.debug("trimmed %d acknowledged entries from %s (below %s)", removed, stream, min_id)
    return removed


async def backlog(client: Any, stream: str) -> list[StreamBacklog]:
    """Per group: pending and not-yet-delivered entries of `stream`."""
    if not await client.exists(stream):
        return []
    return [StreamBacklog(stream, str(g["name"]), int(g["pending"]),
                          None if g.get("lag") is None else int(g["lag"]))
            for g in await client.xinfo_groups(stream)]
