"""Cluster tests run on the real Redis at 127.0.0.1:6379, each under its own key prefix, and
(the process tests) on a fresh PostgreSQL schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.cluster.processes import Served, bridge, core

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def cluster_url() -> AsyncIterator[str]:
    """A --cluster-url of its own (a unique prefix: pub/sub channels ignore the db number); keys removed after."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield f"{REDIS}?prefix={prefix}"
    client = aioredis.Redis.from_url(REDIS)
    try:
        keys = [key async for key in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def cluster(tmp_path: Path, pg_url: str, cluster_url: str) -> AsyncIterator[list[Served]]:
    """Two cores and two bridges as processes: bridge 1 prefers core 1, bridge 2 core 2."""
    cores = [core(tmp_path / f"core{i}", pg_url, cluster_url) for i in (1, 2)]
    started: list[Served] = []
    try:
        for c in cores:  # one after the other: both create the same tables in the fresh schema
            await c.start()
            started.append(c)
        a1, a2 = cores[0].address, cores[1].address
        bridges = [bridge(tmp_path / "bridge1", [a1, a2]), bridge(tmp_path / "bridge2", [a2, a1])]
        for b in bridges:
            await b.start()
            started.append(b)
        yield started
    finally:
        for part in reversed(started):
            await part.stop()
