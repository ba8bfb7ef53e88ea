"""Webhooks that arrive together are recorded in one flush, each caller gets its own answer."""

import asyncio

import pytest

from gateway.group_commit import GroupCommit


class Recorder:
    def __init__(self, fail: bool = False):
        self.flushes: list[list[int]] = []
        self.fail = fail

    async def flush(self, items: list[int]) -> list[str]:
        self.flushes.append(items)
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("redis went away")
        return [f"recorded {i}" for i in items]


async def test_callers_arriving_together_share_one_flush_and_each_gets_its_own_answer():
    rec = Recorder()
    commit = GroupCommit(rec.flush)
    answers = await asyncio.gather(*(commit.submit(i) for i in range(50)))
    assert answers == [f"recorded {i}" for i in range(50)]
    assert rec.flushes == [list(range(50))]


async def test_a_burst_is_split_into_flushes_of_at_most_the_limit():
    rec = Recorder()
    commit = GroupCommit(rec.flush, limit=20)
    await asyncio.gather(*(commit.submit(i) for i in range(50)))
    assert [len(f) for f in rec.flushes] == [20, 20, 10]


async def test_callers_arriving_one_by_one_are_not_held_back():
    rec = Recorder()
    commit = GroupCommit(rec.flush)
    for i in range(3):
        assert await commit.submit(i) == f"recorded {i}"
    assert rec.flushes == [[0], [1], [2]]


async def test_a_failed_flush_fails_every_caller_in_it_and_spares_the_next():
    rec = Recorder(fail=True)
    commit = GroupCommit(rec.flush)
    answers = await asyncio.gather(*(commit.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(a, ConnectionError) for a in answers)
    rec.fail = False
    assert await commit.submit(7) == "recorded 7"


async def test_a_caller_that_hung_up_does_not_stop_the_others():
    rec = Recorder()
    commit = GroupCommit(rec.flush)
    gone = asyncio.ensure_future(commit.submit(1))
    stays = asyncio.ensure_future(commit.submit(2))
    await asyncio.sleep(0)
    gone.cancel()
    assert await stays == "recorded 2"
    with pytest.raises(asyncio.CancelledError):
        await gone
    await commit.drain()
    assert rec.flushes == [[1, 2]]


class SlowRecorder(Recorder):
    """A flush that takes a few turns, like a Redis round trip, and counts how many run at once."""

    def __init__(self):
        super().__init__()
        self.running = self.most = 0

    async def flush(self, items: list[int]) -> list[str]:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            return await super().flush(items)
        finally:
            self.running -= 1


async def test_a_burst_over_many_turns_holds_at_most_the_cap_of_connections_and_every_caller_is_answered():
    rec = SlowRecorder()
    commit = GroupCommit(rec.flush, concurrency=2)
    callers = []
    for i in range(200):  # one arrival a turn, as webhooks do under a burst
        callers.append(asyncio.ensure_future(commit.submit(i)))
        await asyncio.sleep(0)
    assert await asyncio.gather(*callers) == [f"recorded {i}" for i in range(200)]
    assert rec.most == 2
    # Those that waited for a free flush went together: far fewer flushes than callers.
    assert len(rec.flushes) < 100
    assert sorted(i for f in rec.flushes for i in f) == list(range(200))


async def test_drain_waits_for_callers_queued_behind_the_cap():
    rec = SlowRecorder()
    commit = GroupCommit(rec.flush, concurrency=1)
    callers = [asyncio.ensure_future(commit.submit(i)) for i in range(3)]
    await asyncio.sleep(0)
    callers.append(asyncio.ensure_future(commit.submit(3)))  # arrives while the first flush runs
    await asyncio.sleep(0)
    await commit.drain()
    assert all(c.done() for c in callers)
    assert [c.result() for c in callers] == [f"recorded {i}" for i in range(4)]


async def test_without_a_cap_a_flush_that_submits_again_finishes_as_a_worker_needs():
    # A worker's flush sends the next steps, and a send never answered reports through the same commit.
    commit: GroupCommit[int, str] | None = None
    seen = []

    async def flush(items: list[int]) -> list[str]:
        seen.extend(items)
        if any(i < 10 for i in items):
            await asyncio.gather(*(commit.submit(i + 10) for i in items if i < 10))
        return [str(i) for i in items]

    commit = GroupCommit(flush)
    done = await asyncio.wait_for(asyncio.gather(*(commit.submit(i) for i in range(3))), 2)
    assert done == ["0", "1", "2"] and sorted(seen) == [0, 1, 2, 10, 11, 12]
