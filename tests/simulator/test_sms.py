"""An SMS lives the life Twilio reports: sent, then delivered, undelivered or failed."""

from __future__ import annotations

from simkit import FROM, wait_for

CALLBACK = "/hooks/twilio/sms/status"
INBOUND = "/hooks/twilio/sms/inbound"


def resident(rid: str, phone: str, **sms) -> dict:
    return {"resident": rid, "phones": [phone], "sms": {"delay_s": 2.0, **sms}, "understands": ["ko"]}


async def send(client, gateway, to: str, body: str = "폭염 경보: 오늘 오후 외출을 삼가세요.", **extra):
    return await client.messages.create_async(
        to=to, from_=FROM, body=body, status_callback=f"{gateway.url}{CALLBACK}", **extra
    )


async def test_a_delivered_sms_reports_sent_then_delivered_and_never_queued(sim, async_twilio_client, gateway):
    sim.sim.behaviour.add(resident("r1", "+821011110001", outcome="delivered"))
    message = await send(async_twilio_client, gateway, "+821011110001")
    await wait_for(lambda: len(gateway.at(CALLBACK)) == 2)
    assert gateway.statuses(CALLBACK) == ["sent", "delivered"]
    delivered = gateway.at(CALLBACK)[1]
    assert dict(delivered.form) | {"RawDlrDoneDate": "x"} == {
        "SmsSid": message.sid, "SmsStatus": "delivered", "MessageStatus": "delivered", "To": "+821011110001",
        "MessageSid": message.sid, "AccountSid": message.account_sid, "From": FROM, "ApiVersion": "2010-04-01",
        "RawDlrDoneDate": "x",
    }
    assert all(hit.signed() for hit in gateway.at(CALLBACK))
    fetched = await async_twilio_client.messages(message.sid).fetch_async()
    assert fetched.status == "delivered" and fetched.date_sent is not None and fetched.error_code is None
    [entry] = sim.sim.records.for_resident("r1")
    assert entry["status"] == "delivered" and entry["language"] == "ko" and entry["received_at"]


async def test_an_unreachable_handset_reports_undelivered_30003(sim, async_twilio_client, gateway):
    sim.sim.behaviour.add(resident("r2", "+821011110002", outcome="undelivered", error_code=30003))
    message = await send(async_twilio_client, gateway, "+821011110002")
    await wait_for(lambda: len(gateway.at(CALLBACK)) == 2)
    assert gateway.statuses(CALLBACK) == ["sent", "undelivered"]
    assert "ErrorCode" not in gateway.at(CALLBACK)[0].form
    assert gateway.at(CALLBACK)[1].form["ErrorCode"] == "30003"
    fetched = await async_twilio_client.messages(message.sid).fetch_async()
    assert fetched.error_code == 30003 and fetched.error_message == "Unreachable destination handset"
    assert sim.sim.records.for_resident("r2")[0]["received_at"] is None


async def test_a_failed_sms_reports_failed_only(sim, async_twilio_client, gateway):
    sim.sim.behaviour.add(resident("r3", "+821011110003", outcome="failed", error_code=30008))
    await send(async_twilio_client, gateway, "+821011110003")
    await wait_for(lambda: gateway.at(CALLBACK))
    await wait_for(lambda: sim.sim.records.for_resident("r3")[0]["status"] == "failed")
    assert gateway.statuses(CALLBACK) == ["failed"]
    assert gateway.at(CALLBACK)[0].form["ErrorCode"] == "30008"


async def test_a_messaging_service_picks_the_sender(sim, async_twilio_client, gateway):
    message = await async_twilio_client.messages.create_async(
        to="+821011110004", messaging_service_sid="MG" + "1" * 32, body="hi",
        status_callback=f"{gateway.url}{CALLBACK}",
    )
    assert message.from_ is None
    await wait_for(lambda: len(gateway.at(CALLBACK)) == 2)
    assert {hit.form["From"] for hit in gateway.at(CALLBACK)} == {sim.sim.config.messaging_number}
    assert {hit.form["MessagingServiceSid"] for hit in gateway.at(CALLBACK)} == {"MG" + "1" * 32}


async def test_a_gateway_answering_5xx_gets_the_callback_again(sim, async_twilio_client, gateway):
    gateway.failures[CALLBACK] = 2
    await send(async_twilio_client, gateway, "+821011110005")
    await wait_for(lambda: sim.sim.stats["callbacks.sent"] == 2)
    assert sim.sim.stats["callbacks.retried"] == 2 and sim.sim.stats["callbacks.failed"] == 2
    assert set(gateway.statuses(CALLBACK)) == {"sent", "delivered"} and len(gateway.at(CALLBACK)) == 4
    # Retries are the same webhook: same idempotency token.
    by_status = {}
    for hit in gateway.at(CALLBACK):
        by_status.setdefault(hit.form["MessageStatus"], set()).add(hit.headers["I-Twilio-Idempotency-Token"])
    assert all(len(tokens) == 1 for tokens in by_status.values())


async def test_the_simulator_gives_up_after_its_tries_and_says_so(sim, async_twilio_client, gateway):
    gateway.failures[CALLBACK] = 1000
    await send(async_twilio_client, gateway, "+821011110006")
    await wait_for(lambda: sim.sim.stats["callbacks.gave_up"] == 2, timeout=10)
    assert len(gateway.at(CALLBACK)) == 2 * sim.sim.config.callback_tries
    assert len(sim.sim.records.lost_callbacks) == 2


async def test_duplicated_callbacks_arrive_twice(sim, async_twilio_client, gateway):
    sim.sim.faults.set({"twilio-sms": {"duplicate_callbacks": 1.0}})
    await send(async_twilio_client, gateway, "+821011110007")
    await wait_for(lambda: len(gateway.at(CALLBACK)) == 4)
    assert sorted(gateway.statuses(CALLBACK)) == ["delivered", "delivered", "sent", "sent"]


async def test_reordered_callbacks_report_delivered_before_sent(sim, async_twilio_client, gateway):
    sim.sim.faults.set({"twilio-sms": {"reorder_callbacks": 1.0}})
    await send(async_twilio_client, gateway, "+821011110008")
    await wait_for(lambda: len(gateway.at(CALLBACK)) == 2)
    assert gateway.statuses(CALLBACK) == ["delivered", "sent"]


async def test_lost_callbacks_never_arrive(sim, async_twilio_client, gateway):
    sim.sim.faults.set({"twilio-sms": {"lost_callbacks": 1.0}})
    message = await send(async_twilio_client, gateway, "+821011110009")
    await wait_for(lambda: sim.sim.twilio.messages[message.sid]["status"] == "delivered")
    assert sim.sim.stats["callbacks.lost"] == 2 and not gateway.at(CALLBACK)


async def test_a_resident_replies_and_twilio_posts_it_signed(sim, async_twilio_client, gateway):
    sim.sim.behaviour.add(resident("r10", "+821011110010", reply="네", reply_after_s=20.0))
    message = await send(async_twilio_client, gateway, "+821011110010")
    [reply] = await wait_for(lambda: gateway.at(INBOUND))
    assert reply.signed()
    form = dict(reply.form)
    assert form["Body"] == "네" and form["From"] == "+821011110010" and form["To"] == FROM
    assert form["SmsStatus"] == "received" and form["NumMedia"] == "0" and form["NumSegments"] == "1"
    assert form["MessageSid"].startswith("SM") and form["MessageSid"] == form["SmsSid"] != message.sid
    assert form["AccountSid"] == message.account_sid and form["ApiVersion"] == "2010-04-01"
    # Twilio keeps the inbound message too.
    inbound = await async_twilio_client.messages(form["MessageSid"]).fetch_async()
    assert inbound.direction == "inbound" and inbound.status == "received" and inbound.body == "네"
    [entry] = sim.sim.records.for_resident("r10")
    assert [r["body"] for r in entry["replies"]] == ["네"]


async def test_a_resident_does_not_reply_to_a_language_they_do_not_read(sim, async_twilio_client, gateway):
    sim.sim.behaviour.add({**resident("r11", "+821011110011", reply="1", reply_after_s=1.0), "understands": ["en"]})
    message = await send(async_twilio_client, gateway, "+821011110011")
    await wait_for(lambda: sim.sim.twilio.messages[message.sid]["status"] == "delivered")
    await wait_for(lambda: len(gateway.at(CALLBACK)) == 2)
    assert not gateway.at(INBOUND)
    await send(async_twilio_client, gateway, "+821011110011", body="Heat warning: stay inside this afternoon.")
    assert await wait_for(lambda: gateway.at(INBOUND))


async def test_the_same_alert_twice_counts_as_a_duplicate_for_that_resident(sim, async_twilio_client, gateway):
    sim.sim.behaviour.add(resident("r12", "+821011110012"))
    for _ in range(2):
        await send(async_twilio_client, gateway, "+821011110012", body="같은 경보")
    await wait_for(lambda: all(e["received_at"] for e in sim.sim.records.for_resident("r12")))
    assert sim.sim.records.duplicates == {"r12": 1}


async def test_time_scale_shrinks_every_delay(sim, async_twilio_client, gateway):
    sim.sim.behaviour.add(resident("r13", "+821011110013", delay_s=4.0))
    message = await send(async_twilio_client, gateway, "+821011110013")
    entry = sim.sim.records.get(message.sid)
    await wait_for(lambda: entry["received_at"], timeout=2)
    # 4 s of delivery at time_scale 0.01.
    assert 0.03 <= entry["received_at"] - entry["created_at"] <= 0.5
