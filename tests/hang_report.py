"""When a test phase runs close to pytest-timeout's limit, print what every
asyncio task is waiting on: the timeout itself shows only the threads, and a
hung coroutine shows as an idle event loop (a CI run hung this way for ten
minutes with nothing to go on)."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time

import pytest

AHEAD_S = 30.0  # before the timeout, so the report lands in the failing test's captured stderr
_phase: dict = {"since": None, "name": ""}


def _report(signum, frame) -> None:
    loop = asyncio.events._get_running_loop()
    print(f"\n==== still running after {time.monotonic() - (_phase['since'] or 0):.0f} s: {_phase['name']}",
          file=sys.stderr)
    for task in asyncio.all_tasks(loop) if loop else ():
        print(f"--- {task!r}", file=sys.stderr)
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


def _watch(limit_s: float) -> None:
    reported = None
    while True:
        time.sleep(1.0)
        since = _phase["since"]
        if since is not None and since != reported and time.monotonic() - since > limit_s:
            reported = since
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)


def pytest_configure(config) -> None:
    timeout = float(config.getini("timeout") or 0)
    if timeout > AHEAD_S and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, _report)
        threading.Thread(target=_watch, args=(timeout - AHEAD_S,), daemon=True, name="hang-report").start()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _timed(item, "setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _timed(item, "call"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item):
    return (yield from _timed(item, "teardown"))


def _timed(item, phase: str):
    _phase.update(since=time.monotonic(), name=f"{item.nodeid} ({phase})")
    try:
        return (yield)
    finally:
        _phase["since"] = None
