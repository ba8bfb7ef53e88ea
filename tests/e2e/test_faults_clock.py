"""A pump or a worker whose clock is 30 s off fires no timer early (nor late).

Deadlines are set and judged by Redis's clock (TIME, in transitions.lua and
the pump's scripts), never the caller's. Before, a worker 30 s behind set
every SMS step's deadline 30 s early and the other worker called those
residents 20 s too soon; a pump 30 s ahead took a fan-out still running for
a stuck one and started it again. Clocks are put off with libfaketime.
"""

from __future__ import annotations

import os

import pytest

from fault_drill import SILENT_EVERY, Run
from process_stack import LIBFAKETIME, ProcessStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(LIBFAKETIME),
                                 reason="libfaketime is not installed (apt-get install faketime)")]

RESIDENTS = 1000


async def clocks_off_from_the_start(run: Run) -> None:
    """The fault is there before the alert: nothing to do when it strikes."""


async def test_a_worker_and_the_pump_with_clocks_30_s_off_call_nobody_early(tmp_path):
    with ProcessStack(tmp_path, clock_offsets={"worker1": -30, "pump": 30}) as stack:
        run = await Run(stack, RESIDENTS)(clocks_off_from_the_start)
    print(f"\n{RESIDENTS} residents, clocks off: " + "; ".join(run.notes[:2]))
    assert run.lost == 0
    assert run.early_calls == 0
    assert run.duplicated == 0
    assert run.contacted_again == 0
    # Those whose texts are never receipted were called: the timers did fire.
    assert run.calls >= RESIDENTS // SILENT_EVERY
