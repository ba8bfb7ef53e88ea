"""Connecting to the state Redis, the same way in every process.

A URL is redis://, rediss://, unix:// (one server) or, for a primary watched
by Redis Sentinel, redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db]:
the sentinels are asked where the primary is, and asked again after a failover.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import unquote

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import ConnectionPool, Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, NoScriptError
from redis.exceptions import TimeoutError as RedisTimeout

SENTINEL_SCHEME = "redis+sentinel://"


class FairPool(ConnectionPool):
    """Waits for a free connection in the order callers asked, for at most `timeout` s.

    redis-py's BlockingConnectionPool wakes a waiter through an
    asyncio.Condition, but a caller arriving meanwhile takes the freed
    connection first and the woken one queues again at the back; a waiter
    whose timeout fires as it is woken swallows the wake-up (CPython
    gh-112202), leaving connections idle while others wait.  After a 3 s
    Redis stall over TCP, with ~800 webhooks queued, some waited 15-30 s
    while the pool served 900 a second, so Twilio gave up on them and their
    receipts were lost.  An asyncio.Semaphore is first come, first served and
    passes a wake-up on when its waiter is cancelled.
    """

    def __init__(self, *args, timeout: float = 30, **kwargs):
        super().__init__(*args, **kwargs)
        self.timeout = timeout
        self._free = asyncio.Semaphore(self.max_connections)
        self._fewest_free = self.max_connections

    async def get_connection(self, command_name=None, *keys, **options):
        # Only a caller that has to wait pays for the timeout (a timer each).
        if self._free.locked():
            try:
                async with asyncio.timeout(self.timeout):
                    await self._free.acquire()
            except TimeoutError as e:
                raise ConnectionError("No connection available.") from e
        else:
            await self._free.acquire()
        self._fewest_free = min(self._fewest_free, self._free._value)
        # One that fails to connect is given back by release() below.
        return await super().get_connection()

    def fewest_idle(self) -> int:
        """The fewest connections no caller held since the previous call (0: callers
        waited for one), and starts again from now: a low-water mark per scrape."""
        fewest, self._fewest_free = self._fewest_free, self._free._value
        return fewest

    async def release(self, connection) -> None:
        # Shielded: a caller cancelled while giving its connection back
        # (a timeout, a client gone) still gives it back, or the pool shrinks.
        await asyncio.shield(self._give_back(connection))

    async def _give_back(self, connection) -> None:
        try:
            await super().release(connection)
        finally:
            self._free.release()


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
        loaded = self._loaded()
        if self.is_transaction or self.explicit_transaction or not all(s.sha in loaded for s in self.scripts):
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


@dataclass(frozen=True)
class SentinelUrl:
    """redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db].
    The password is the Redis servers' (primary and replicas); the sentinels are asked without one."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> "SentinelUrl":
        if not url.startswith(SENTINEL_SCHEME):
            raise ValueError(f"not a {SENTINEL_SCHEME} URL")
        rest = url[len(SENTINEL_SCHEME):]
        credentials, _, rest = rest.rpartition("@")
        hosts, _, path = rest.partition("/")
        service, _, db = path.strip("/").partition("/")
        if not hosts or not service or (db and not db.isdigit()):
            raise ValueError(f"GATEWAY_REDIS_URL: {url!r} is not "
                             f"{SENTINEL_SCHEME}[:password@]host:port[,host:port...]/service_name[/db]")
        username, _, password = credentials.partition(":") if credentials else ("", "", "")
        sentinels = []
        for host in hosts.split(","):
            name, _, port = host.rpartition(":")
            sentinels.append((name.strip("[]") or host, int(port) if port.isdigit() else 26379))
        return cls(tuple(sentinels), unquote(service), int(db or 0), unquote(username) or None,
                   unquote(password) or None)

    def broker(self) -> tuple[str, dict]:
        """Celery's (kombu's) form of the same: one sentinel:// URL per sentinel
        joined by ';', and the service named in the transport options."""
        auth = f"{self.username or ''}:{self.password}@" if self.password else ""
        url = ";".join(f"sentinel://{auth}{host}:{port}/{self.db}" for host, port in self.sentinels)
        return url, {"master_name": self.service, "sentinel_kwargs": {"socket_timeout": 5}}


class _SentinelConnection(_HiredisPacking, SentinelManagedConnection):
    async def send_packed_command(self, command, check_health: bool = True) -> None:
        # redis-py (8.1) reconnects a dropped connection here to the address it
        # last had, the dead primary, without asking the sentinels again.
        if not self.is_connected:
            await self.connect()
        await super().send_packed_command(command, check_health)


class _SentinelPool(SentinelConnectionPool, FairPool):
    """Finds the primary through the sentinels, and waits for a free connection
    like the single-server pool."""


# How long a command keeps trying while the sentinels elect a new primary:
# down-after-milliseconds plus the election, with room (about 30 s in all).
# Only on a refused or broken connection: a command that timed out may still
# run, and sending it again under load only adds to the load.
_FAILOVER_RETRY = Retry(ExponentialBackoff(cap=1.0, base=0.05), 40, supported_errors=(ConnectionError,))


# A command (or a connect) that Redis has not answered in this long fails, and
# the caller runs it again on a new connection: a link that loses what is sent
# (a cable pulled, a host gone) refuses nothing, and without a timeout a pump or
# worker would wait until TCP gives up, minutes later.  redis-py 6+ has this by
# default; 5.x, which pyproject.toml allows, waits forever.
STORE_TIMEOUT_S = 5
# What a caller sees when Redis is down, unreachable or its pool stays full:
# an outage to report as such (503, try again), not a bug.
STORE_DOWN = (ConnectionError, RedisTimeout)


def connect(url: str, max_connections: int = 64) -> aioredis.Redis:
    """A client whose pool waits for a free connection instead of failing:
    a burst of webhooks should queue for a moment, not error."""
    if url.startswith(SENTINEL_SCHEME):
        target = SentinelUrl.parse(url)
        # Timeouts with room for a busy event loop: shorter ones turned a busy
        # moment into "no primary found" for every connection at once.
        sentinel = Sentinel(target.sentinels, sentinel_kwargs={"socket_timeout": 5, "socket_connect_timeout": 5})
        # A command cut off by the failover is sent again to the new primary:
        # every transition checks the state it moves from, so a repeat moves nothing.
        pool = _SentinelPool(target.service, sentinel, connection_class=_SentinelConnection,
                             max_connections=max_connections, timeout=30, db=target.db,
                             username=target.username, password=target.password,
                             socket_timeout=STORE_TIMEOUT_S, socket_connect_timeout=STORE_TIMEOUT_S,
                             retry=_FAILOVER_RETRY)
    else:
        pool = FairPool.from_url(url, max_connections=max_connections, timeout=30,
                                 socket_timeout=STORE_TIMEOUT_S, socket_connect_timeout=STORE_TIMEOUT_S)
        pool.connection_class = _PACKING.get(pool.connection_class, pool.connection_class)
    return _Redis(connection_pool=pool)
