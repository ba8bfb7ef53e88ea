"""An evacuation order is not held up by a water cut's backlog of escalations.

Workers take queued escalations before new fan-out batches, so a resident
whose text timed out waits for no new alert. Before, that held for every
alert alike: an Extreme alert's fan-out waited until the workers had called
every resident of a Moderate water cut whose SMS step had timed out, with no
cap. Now the workers take an alert's work by its severity's turn first
(gateway/fallback.py). On RabbitMQ, which orders each queue but not the two
queues between them, the evacuation's fan-out shares the workers with the
water cut's escalations.
"""

from __future__ import annotations

import pytest

from hosts import rabbitmq_server
from process_stack import ProcessStack
from urgent_drill import SETTINGS, VOICE_CPS, drill

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BACKLOG = 300  # 30 s of calls at VOICE_CPS
URGENT = 60


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
async def test_an_evacuation_order_reaches_every_resident_while_a_water_cuts_calls_are_still_queued(
        tmp_path, broker):
    if broker == "rabbitmq" and rabbitmq_server() is None:
        pytest.skip("no rabbitmq-server installed")
    with ProcessStack(tmp_path, workers=1, broker=broker, env=SETTINGS) as stack:
        figures = await drill(stack, BACKLOG, URGENT)
    print(f"\n{broker}: {figures}")
    if broker == "redis":
        # Its last resident's first text went out with a third of the water cut's calls still to come...
        assert figures.backlog_left >= BACKLOG // 3, figures
        # ...and long before those calls could all have been placed.
        assert figures.last_first_s < BACKLOG / VOICE_CPS / 2, figures
    else:
        # RabbitMQ has no order between the two queues: the evacuation's batches
        # share the workers with the water cut's calls instead of going first
        # (docs/design.md), but never wait for all of them.
        assert figures.backlog_left > 0, figures
