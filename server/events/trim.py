"""Trimming Redis streams without losing anything: only below every consumer group's acknowledged position.

`XADD MAXLEN ~N` deletes the oldest entries whatever the groups have read, so a
consumer that is down for a while (or simply slow) loses events. Here a
stream is trimmed with `XTRIM MINID` to the lowest id any group still needs:
its oldest pending (delivered, unacknowledged) entry, or else the entry after
its last-delivered one. A stream with no group is never trimmed (nobody has
said what it has read). The group state is read before the pending lists, and
groups only move forward, so a position seen here is never ahead of the truth.

A stalled group therefore grows its stream (a group nobody will consume any
more must be removed with `XGROUP DESTROY`, or it holds every entry);
`StreamBacklog` is what it still has to work through, for the operator to see: `backlog()` reads it, and the
pipeline's trim loop `record`s it for the gauges `peromesh.events.pending`
and `peromesh.events.lag` (per stream and group).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

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


_latest: dict[tuple[str, str], StreamBacklog] = {}  # (stream, group) → last figures; bounded by the groups


def record(figures: Iterable[StreamBacklog]) -> None:
    """Keep the latest figures for the gauges (they never query Redis themselves)."""
    for item in figures:
        _latest[(item.stream, item.group)] = item


def _observe_pending(_options: CallbackOptions) -> Iterable[Observation]:
    return [Observation(b.pending, {"stream": b.stream, "group": b.group}) for b in list(_latest.values())]


def _observe_lag(_options: CallbackOptions) -> Iterable[Observation]:
    return [Observation(b.lag, {"stream": b.stream, "group": b.group})
            for b in list(_latest.values()) if b.lag is not None]


_meter = metrics.get_meter("peromesh.events")
_meter.create_observable_gauge("peromesh.events.pending", callbacks=[_observe_pending],
                               description="stream entries delivered to a group, not acknowledged")
_meter.create_observable_gauge("peromesh.events.lag", callbacks=[_observe_lag],
                               description="stream entries not yet delivered to a group")
