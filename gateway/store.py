"""Connecting to the state Redis, the same way in every process."""

from __future__ import annotations

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection


class _HiredisPacking:
    """Commands packed by hiredis in C instead of redis-py's loop in Python:
    one batch op of transitions.lua carries thousands of arguments, and
    packing them was a tenth of a worker's CPU."""

    def pack_command(self, *args):
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            # A value hiredis will not pack (None, bool): redis-py's own error names it.
            return super().pack_command(*args)


_PACKING = {cls: type(cls.__name__, (_HiredisPacking, cls), {})
            for cls in (Connection, SSLConnection, UnixDomainSocketConnection)}


def connect(url: str, max_connections: int = 64) -> aioredis.Redis:
    """A client whose pool waits for a free connection instead of failing:
    a burst of webhooks should queue for a moment, not error."""
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=30)
    pool.connection_class = _PACKING.get(pool.connection_class, pool.connection_class)
    return aioredis.Redis(connection_pool=pool)
