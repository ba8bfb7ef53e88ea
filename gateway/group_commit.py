"""Group commit: callers that arrive together share one flush.

A webhook handler that runs its own Redis round trips holds a pooled
connection for each of them, and under a burst (a worker back after a crash
sends thousands of texts in seconds, each answered by two or three
callbacks) the handlers queue for connections until the provider's 15 s
timeout passes and its receipt is lost.  Handlers that hand their item here
instead wait on a future: every item submitted in one turn of the event loop
goes to Redis in one flush, so the cost per item falls as the load rises.

Flushes under way can be capped (`concurrency`): a burst that arrives over
many turns would otherwise start a flush a turn, each holding a connection,
and drain the pool that alert posts and the console share (67 receipts
waited 30 s for a connection in the reordered-callbacks storm).  While the
cap is reached, arrivals wait and go together in the next flush: the batch
grows instead of the connections held.  Only a flush that never waits on
another submit may be capped, or capped flushes could wait on one another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    def __init__(self, flush: Callable[[list[Item]], Awaitable[list[Result]]], limit: int = 500,
                 concurrency: int | None = None):
        self._flush = flush
        self._limit = limit
        self._concurrency = concurrency or float("inf")
        self._pending: list[tuple[Item, asyncio.Future]] = []
        self._scheduled = False
        self._running: set[asyncio.Task] = set()

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._pending.append((item, done))
        if not self._scheduled:
            # Next turn: whatever else arrives in this one joins the flush.
            self._scheduled = True
            loop.call_soon(self._start)
        return await done

    def _start(self) -> None:
        self._scheduled = False
        while self._pending and len(self._running) < self._concurrency:
            batch, self._pending = self._pending[:self._limit], self._pending[self._limit:]
            task = asyncio.ensure_future(self._run(batch))
            # The loop keeps only weak references to tasks.
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self._running.discard(task)
        # Whatever waited for a free flush goes now.
        self._start()

    async def _run(self, batch: list[tuple[Item, asyncio.Future]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, done in batch:
                done.cancel()
            raise
        except Exception as e:  # noqa: BLE001 - each caller gets the error as its own
            for _, done in batch:
                if not done.done():
                    done.set_exception(e)
            return
        for (_, done), result in zip(batch, results):
            if not done.done():  # its caller may have gone (a client that hung up)
                done.set_result(result)

    async def drain(self) -> None:
        """Waits for every flush under way (a process that stops)."""
        while self._pending or self._running:
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)
            else:
                await asyncio.sleep(0)
