"""A call rings, is answered by a person or a machine, and plays the gateway's TwiML."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from simkit import FROM, wait_for

STATUS = "/hooks/twilio/voice/status"
ALERT = "/hooks/twilio/voice/alert"
ACK = "/hooks/twilio/voice/ack"
EVENTS = ["initiated", "ringing", "answered", "completed"]

KOREAN_ALERT = """<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Gather input="dtmf" numDigits="1" timeout="5" action="{ack}" method="POST">
    <Say voice="Polly.Seoyeon" language="ko-KR"><prosody rate="slow">폭염 경보입니다. 확인하셨으면 1번을, 다시 들으시려면 9번을 누르세요.</prosody></Say>
  </Gather>
  <Say voice="Polly.Seoyeon" language="ko-KR">응답이 없어 전화를 끊습니다.</Say>
</Response>"""
THANKS = '<Response><Say language="ko-KR">감사합니다.</Say><Hangup/></Response>'


def resident(rid: str, phone: str, understands=("ko",), **voice) -> dict:
    return {"resident": rid, "phones": [phone], "voice": {"ring_s": 5.0, **voice}, "understands": list(understands)}


async def call(client, gateway, to: str, **extra):
    return await client.calls.create_async(
        to=to, from_=FROM, url=f"{gateway.url}{ALERT}", status_callback=f"{gateway.url}{STATUS}",
        status_callback_event=EVENTS, **extra,
    )


def serve_alert(gateway) -> None:
    gateway.twiml[ALERT] = KOREAN_ALERT.format(ack=ACK)
    gateway.twiml[ACK] = lambda hit: KOREAN_ALERT.format(ack=ACK) if hit.form["Digits"] == "9" else THANKS


async def finished(sim, sid: str) -> dict:
    return await wait_for(lambda: sim.records.get(sid)["status"] not in ("queued", "ringing", "in-progress") and sim.records.get(sid))


async def test_a_korean_resident_hears_korean_and_presses_1(sim, async_twilio_client, gateway):
    serve_alert(gateway)
    sim.sim.behaviour.add(resident("k1", "+821020000001", answer="human", press=["1"]))
    placed = await call(async_twilio_client, gateway, "+821020000001")
    entry = await finished(sim.sim, placed.sid)

    heard = entry["heard"]
    assert heard[0] == {**heard[0], "language": "ko-KR", "voice": "Polly.Seoyeon",
                        "text": "폭염 경보입니다. 확인하셨으면 1번을, 다시 들으시려면 9번을 누르세요."}
    assert [h["text"] for h in heard] == [heard[0]["text"], "감사합니다."]
    assert [p["digits"] for p in entry["pressed"]] == ["1"]
    [ack] = gateway.at(ACK)
    assert ack.signed() and ack.form["Digits"] == "1" and ack.form["CallSid"] == placed.sid
    assert ack.form["CallStatus"] == "in-progress" and ack.form["Direction"] == "outbound-api"
    [fetch] = gateway.at(ALERT)
    assert fetch.signed() and fetch.method == "POST" and "AnsweredBy" not in fetch.form

    await wait_for(lambda: len(gateway.at(STATUS)) == 4)
    callbacks = gateway.at(STATUS)
    assert all(hit.signed() for hit in callbacks)
    assert [h.form["CallStatus"] for h in callbacks] == ["initiated", "ringing", "in-progress", "completed"]
    assert [h.form["SequenceNumber"] for h in callbacks] == ["0", "1", "2", "3"]
    assert {h.form["CallbackSource"] for h in callbacks} == {"call-progress-events"}
    assert all(parsedate_to_datetime(h.form["Timestamp"]) for h in callbacks)
    completed = callbacks[-1].form
    assert int(completed["CallDuration"]) == entry["duration_s"] >= 5
    resource = await async_twilio_client.calls(placed.sid).fetch_async()
    assert resource.status == "completed" and resource.duration == completed["CallDuration"]
    assert entry["received_at"] and entry["language"] == "ko-KR"


async def test_pressing_9_repeats_the_message_then_1_acknowledges(sim, async_twilio_client, gateway):
    serve_alert(gateway)
    sim.sim.behaviour.add(resident("k2", "+821020000002", answer="human", press=["9", "1"]))
    placed = await call(async_twilio_client, gateway, "+821020000002")
    entry = await finished(sim.sim, placed.sid)
    assert [h.form["Digits"] for h in gateway.at(ACK)] == ["9", "1"]
    assert [p["digits"] for p in entry["pressed"]] == ["9", "1"]
    assert [h["text"] for h in entry["heard"]].count(entry["heard"][0]["text"]) == 2


async def test_an_answering_machine_hears_the_message_and_never_presses(sim, async_twilio_client, gateway):
    serve_alert(gateway)
    sim.sim.behaviour.add(resident("k3", "+821020000003", answer="machine", press=["1"]))
    placed = await call(async_twilio_client, gateway, "+821020000003", machine_detection="DetectMessageEnd")
    entry = await finished(sim.sim, placed.sid)
    assert entry["answered_by"] == "machine_end_beep" and entry["pressed"] == []
    assert not gateway.at(ACK)
    assert gateway.at(ALERT)[0].form["AnsweredBy"] == "machine_end_beep"
    # With no keypress the Gather falls through to the next verb.
    assert [h["text"] for h in entry["heard"]][-1] == "응답이 없어 전화를 끊습니다."
    await wait_for(lambda: len(gateway.at(STATUS)) == 4)
    assert gateway.at(STATUS)[-1].form["AnsweredBy"] == "machine_end_beep"
    resource = await async_twilio_client.calls(placed.sid).fetch_async()
    assert resource.answered_by == "machine_end_beep"


async def test_detection_without_waiting_for_the_beep_says_machine_start(sim, async_twilio_client, gateway):
    serve_alert(gateway)
    sim.sim.behaviour.add(resident("k4", "+821020000004", answer="machine"))
    placed = await call(async_twilio_client, gateway, "+821020000004", machine_detection="Enable")
    entry = await finished(sim.sim, placed.sid)
    assert entry["answered_by"] == "machine_start" and entry["pressed"] == []


async def test_a_person_answering_under_detection_is_human(sim, async_twilio_client, gateway):
    serve_alert(gateway)
    sim.sim.behaviour.add(resident("k5", "+821020000005", answer="human", press=["1"]))
    placed = await call(async_twilio_client, gateway, "+821020000005", machine_detection="Enable")
    await finished(sim.sim, placed.sid)
    assert gateway.at(ACK)[0].form["AnsweredBy"] == "human"


async def test_a_resident_who_does_not_understand_presses_nothing(sim, async_twilio_client, gateway):
    serve_alert(gateway)
    sim.sim.behaviour.add(resident("k6", "+821020000006", understands=("vi",), answer="human", press=["1"]))
    placed = await call(async_twilio_client, gateway, "+821020000006")
    entry = await finished(sim.sim, placed.sid)
    assert entry["pressed"] == [] and not gateway.at(ACK) and len(entry["heard"]) == 2


async def test_busy_no_answer_and_failed_calls_end_without_twiml(sim, async_twilio_client, gateway):
    serve_alert(gateway)
    outcomes = {"busy": "+821020000007", "no-answer": "+821020000008", "failed": "+821020000009"}
    sids = {}
    for answer, phone in outcomes.items():
        sim.sim.behaviour.add(resident(f"k-{answer}", phone, answer=answer))
        sids[answer] = (await call(async_twilio_client, gateway, phone, timeout=20)).sid
    for answer, sid in sids.items():
        entry = await finished(sim.sim, sid)
        assert entry["status"] == answer and entry["heard"] == [] and entry["received_at"] is None
        resource = sim.sim.twilio.calls[sid]
        assert resource["status"] == answer and resource["duration"] is None and resource["start_time"] is None
    assert not gateway.at(ALERT)
    await wait_for(lambda: len([h for h in gateway.at(STATUS) if h.form["CallStatus"] in outcomes]) == 3)
    failed = [h.form["CallStatus"] for h in gateway.at(STATUS) if h.form["CallSid"] == sids["failed"]]
    assert failed == ["failed"]


async def test_ringing_longer_than_the_timeout_is_no_answer(sim, async_twilio_client, gateway):
    serve_alert(gateway)
    sim.sim.behaviour.add(resident("k10", "+821020000010", answer="human", ring_s=30.0))
    placed = await call(async_twilio_client, gateway, "+821020000010", timeout=15)
    assert (await finished(sim.sim, placed.sid))["status"] == "no-answer"


async def test_redirect_pause_play_and_inline_twiml_are_followed(sim, async_twilio_client, gateway):
    gateway.twiml["/next"] = '<Response><Say language="en-US">Second page.</Say></Response>'
    twiml = (
        '<Response><Play>https://example.org/siren.mp3</Play><Pause length="2"/>'
        '<Say language="en-US" loop="2">First page.</Say>'
        f"<Redirect>{gateway.url}/next</Redirect><Say>never heard</Say></Response>"
    )
    placed = await async_twilio_client.calls.create_async(to="+821020000011", from_=FROM, twiml=twiml)
    entry = await finished(sim.sim, placed.sid)
    assert entry["heard"][0]["play"] == "https://example.org/siren.mp3"
    assert [(h["text"], h["loop"]) for h in entry["heard"][1:]] == [("First page.", 2), ("Second page.", 1)]
    assert entry["status"] == "completed"


async def test_a_twiml_fetch_that_fails_ends_the_call_with_11200(sim, async_twilio_client, gateway):
    gateway.failures[ALERT] = 1
    placed = await call(async_twilio_client, gateway, "+821020000012")
    entry = await finished(sim.sim, placed.sid)
    assert entry["errors"][0]["code"] == 11200 and entry["heard"] == [] and entry["received_at"] is None


async def test_broken_twiml_is_error_12100(sim, async_twilio_client, gateway):
    gateway.twiml[ALERT] = "<Response><Say>unclosed</Response>"
    placed = await call(async_twilio_client, gateway, "+821020000013")
    entry = await finished(sim.sim, placed.sid)
    assert entry["errors"][0]["code"] == 12100


async def test_only_the_events_asked_for_are_sent(sim, async_twilio_client, gateway):
    serve_alert(gateway)
    placed = await async_twilio_client.calls.create_async(
        to="+821020000014", from_=FROM, url=f"{gateway.url}{ALERT}", status_callback=f"{gateway.url}{STATUS}",
    )
    await finished(sim.sim, placed.sid)
    await wait_for(lambda: gateway.at(STATUS))
    assert [h.form["CallStatus"] for h in gateway.at(STATUS)] == ["completed"]
