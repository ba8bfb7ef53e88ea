"""Before an SMS step escalates for want of a delivery receipt, Twilio is asked
what became of the text: one whose receipt was lost on the way is found
delivered, so the resident is not called.  Texts whose `sent` callback came
are asked too: skipping them was tried (an escalation then costs the worker
0.71 of its CPU) and undone, because under a burst of webhooks the
`delivered` receipt waits in the API's queue past the step's deadline, and
184 residents whose text had arrived were called (10,000 residents,
callbacks tripled, bench/chaos_storms.py)."""

from __future__ import annotations

import pytest
from stackkit import heat_wave

from gateway.samples import phone, resident

pytestmark = pytest.mark.e2e

LOOK_UP = "requests.GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"
SMS_THEN_CALL = {"channels": ["sms", "voice"], "step_timeouts": {"sms": 2, "voice": 4}}


async def test_a_text_whose_callbacks_were_all_lost_is_found_delivered_and_the_resident_is_not_called(city):
    city.sim.faults.set({"twilio-sms": {"lost_callbacks": 1.0}})
    await city.add(resident("lost1", phone("+821055510002", "feature_phone")),
                   {"phones": ["+821055510002"], "sms": {"outcome": "delivered"},
                    "voice": {"answer": "human", "press": ["1"]}})
    aid = await city.post_alert(heat_wave({"residents": ["lost1"]}, policy=SMS_THEN_CALL))
    await city.settled(aid)
    path = await city.path(aid, "lost1")
    assert path["confirmed_by"] == {"channel": "sms", "level": "delivered"}
    assert city.sim.stats[LOOK_UP] == 1
    assert [r["channel"] for r in city.received("lost1")] == ["sms"]
