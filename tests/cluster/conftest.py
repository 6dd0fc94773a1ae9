"""Cluster tests run on the real Redis at 127.0.0.1:6379, each under its own key prefix."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

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
