"""Provider storms during a live alert to a thousand residents, on the gateway
as a city runs it (every part its own process): Twilio failing,
rate-limiting or hanging, its callbacks lost, tripled, reordered or late, FCM
unavailable, the print house's drop box unwritable.  Whatever the storm, every
resident ends in exactly one terminal state, nobody who confirmed is contacted
again, duplicated sends stay within what was in flight, and an operator sees
the storm while it lasts: a provider's on /metrics and the console's provider
page, a callback storm's as /metrics answering with the timers' lag and the
queues' depths (tests/e2e/stormkit.py)."""

from __future__ import annotations

import pytest
from process_stack import ProcessStack
from stormkit import BY_NAME, STORMS, storm

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RESIDENTS = 1000
STORM_S = 4


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """One gateway for every storm, emptied before each: a stack's start costs seconds."""
    with ProcessStack(tmp_path_factory.mktemp("storms")) as stack:
        yield stack


@pytest.mark.parametrize("name", [s.name for s in STORMS])
async def test_every_resident_ends_once_and_nobody_confirmed_is_contacted_again(gateway, name):
    v = await storm(gateway, name, RESIDENTS, STORM_S, settle_timeout_s=120)
    notes = "\n".join(v.notes())
    assert v.lost == 0, notes
    assert sum(v.states.values()) == RESIDENTS, notes
    assert v.contacted_after_confirming == 0, notes
    assert v.duplicated <= v.in_flight, notes
    # A receipt lost or late is asked of Twilio before the step escalates: nobody whose text arrived is called.
    assert v.called_though_texted == 0, notes
    # A provider that says the same thing twice is counted once.
    assert v.counted_events == v.distinct_events, notes
    assert v.task_failures == [], notes
    provider = BY_NAME[name].shows_as
    if provider:
        assert v.shown_failing(provider), notes
    else:
        # No provider fails: what /metrics can show is the timers' lag and the queues' depths.
        assert v.metrics_answered, notes
