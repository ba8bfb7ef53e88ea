"""Connecting to the state Redis, the same way in every process."""

from __future__ import annotations

import redis.asyncio as aioredis


def connect(url: str, max_connections: int = 64) -> aioredis.Redis:
    """A client whose pool waits for a free connection instead of failing:
    a burst of webhooks should queue for a moment, not error."""
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=30)
    return aioredis.Redis(connection_pool=pool)
