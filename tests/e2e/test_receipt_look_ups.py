"""Before an SMS step escalates for want of a delivery receipt, Twilio is asked
what became of the text only when its callbacks may have been lost: a text
that never arrived is followed by a call at once, and one whose receipt was
lost on the way is found delivered, so the resident is not called."""

from __future__ import annotations

import pytest
from stackkit import heat_wave

from gateway.samples import phone, resident

pytestmark = pytest.mark.e2e

LOOK_UP = "requests.GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"
SMS_THEN_CALL = {"channels": ["sms", "voice"], "step_timeouts": {"sms": 2, "voice": 4}}


async def test_a_text_that_left_twilio_but_never_arrived_is_followed_by_a_call_without_asking_twilio(city):
    # The handset is off: Twilio says `sent` at once, and `delivered` never comes.
    await city.add(resident("off1", phone("+821055510001", "feature_phone")),
                   {"phones": ["+821055510001"], "sms": {"delay_s": 100_000},
                    "voice": {"answer": "human", "press": ["1"]}})
    aid = await city.post_alert(heat_wave({"residents": ["off1"]}, policy=SMS_THEN_CALL))
    await city.settled(aid)
    path = await city.path(aid, "off1")
    assert path["confirmed_by"]["channel"] == "voice"
    # Its `sent` callback came through, so a missing receipt means not delivered yet, not lost.
    assert city.sim.stats[LOOK_UP] == 0


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
