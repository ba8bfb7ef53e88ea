"""Connecting to the state Redis, the same way in every process."""

from __future__ import annotations

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import NoScriptError


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


class _Pipeline(Pipeline):
    """Asks whether its scripts are loaded once per client, not before every pipeline.

    redis-py sends SCRIPT EXISTS ahead of each pipeline that carries a script:
    a round trip more for every batch op, and for every pacer flush (one every
    few milliseconds in each worker).  A server that has lost its scripts
    since (restarted, SCRIPT FLUSH) refuses them with NOSCRIPT: they are
    loaded again and only the refused commands run again, so nothing runs twice.
    """

    def _loaded(self) -> set[str]:
        return self.connection_pool.__dict__.setdefault("gateway_loaded_scripts", set())

    async def load_scripts(self) -> None:
        # A transaction must see its scripts before MULTI: redis-py's own way.
        if self.is_transaction or self.explicit_transaction or not all(s.sha in self._loaded() for s in self.scripts):
            await super().load_scripts()
            self._loaded().update(s.sha for s in self.scripts)

    async def execute(self, raise_on_error: bool = True) -> list:
        if self.is_transaction or self.explicit_transaction or not self.scripts:
            return await super().execute(raise_on_error)
        stack, scripts = list(self.command_stack), set(self.scripts)
        results = await super().execute(raise_on_error=False)
        refused = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if refused:
            self._loaded().clear()
            again = _Pipeline(self.connection_pool, self.response_callbacks, False, None)
            again.command_stack = [stack[i] for i in refused]
            again.scripts = scripts
            for i, result in zip(refused, await again.execute(raise_on_error=False)):
                results[i] = result
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results


class _Redis(aioredis.Redis):
    def pipeline(self, transaction: bool = True, shard_hint=None) -> _Pipeline:
        return _Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def connect(url: str, max_connections: int = 64) -> aioredis.Redis:
    """A client whose pool waits for a free connection instead of failing:
    a burst of webhooks should queue for a moment, not error."""
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=30)
    pool.connection_class = _PACKING.get(pool.connection_class, pool.connection_class)
    return _Redis(connection_pool=pool)
