"""A pump or a worker whose clock is 30 s off fires no timer early (nor late).

Deadlines are set and judged by Redis's clock (TIME, in transitions.lua and
the pump's scripts), and so are provider pace slots (transitions/pacing.lua),
never the caller's. Before, a worker 30 s behind set every SMS step's
deadline 30 s early and the other worker called those residents 20 s too
soon; a pump 30 s ahead took a fan-out still running for a stuck one and
started it again. Later, the worker 30 s behind still found every pace slot
29 s ahead of its clock: its texts waited until their step had timed out
(those residents were called though their text would have been delivered at
once), and its calls waited past the claim lease, so another worker placed
the same call again. Clocks are put off with libfaketime.
"""

from __future__ import annotations

import os

import aiohttp
import pytest

from fault_drill import SILENT_EVERY, Run, clock_off
from process_stack import LIBFAKETIME, ProcessStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(LIBFAKETIME),
                                 reason="libfaketime is not installed (apt-get install faketime)")]

RESIDENTS = 1000


async def test_a_worker_and_the_pump_with_clocks_30_s_off_call_nobody_early_or_needlessly(tmp_path):
    with ProcessStack(tmp_path, clock_offsets={"worker1": -30, "pump": 30}) as stack:
        run = await Run(stack, RESIDENTS)(clock_off)
        async with aiohttp.ClientSession() as http:
            records = await stack.simulator_records(http)
    # Residents whose text the simulator receipts at once; none of them needs a call.
    receipted = {f"c{i:06d}" for i in range(RESIDENTS) if i % SILENT_EVERY}
    texted = {r["resident"] for r in records if r["channel"] == "sms"}
    called_needlessly = {r["resident"] for r in records if r["channel"] == "voice"} & receipted
    print(f"\n{RESIDENTS} residents, clocks off: " + "; ".join(run.notes[:2]))
    assert run.lost == 0
    assert run.early_calls == 0
    assert run.duplicated == 0
    assert run.contacted_again == 0
    assert texted == set(run.rids)
    assert not called_needlessly, f"{len(called_needlessly)} called though their text is receipted at once"
    # Those whose texts are never receipted were called: the timers did fire.
    assert run.calls >= RESIDENTS // SILENT_EVERY
