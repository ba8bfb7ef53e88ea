"""Whatever reaches a webhook or a form (bytes in any encoding and content
type, or a form Twilio really signed but with fields and path segments no
gateway ever handed out), the answer is never a 500. Bounded by max_examples."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest
from capkit import answers_sms, placed
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

pytestmark = pytest.mark.e2e

FUZZ = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SIGNED_HOOKS = ["sms/{aid}/{rid}/{k}/{n}/{leg}", "sms/inbound", "voice/{aid}/{rid}/{k}/{n}/{leg}",
                "gather/{aid}/{rid}/{k}/{n}/{leg}", "call/{aid}/{rid}/{k}/{n}/{leg}"]
FORM_POSTS = ["/hooks/twilio/sms/inbound", "/hooks/twilio/sms/al_x/r/0/0/0", "/hooks/push/ack", "/ops/login",
              "/m/al_x.token", "/r/al_x.token"]
FIELDS = ["MessageStatus", "ErrorCode", "MessageSid", "From", "To", "Body", "CallStatus", "CallSid", "AnsweredBy",
          "Digits", "AccountSid", "SmsStatus"]
VALUES = st.one_of(
    st.sampled_from(["delivered", "failed", "undelivered", "sent", "completed", "busy", "no-answer", "human",
                     "machine_start", "fax", "1", "9", "30003", "21610", "+821055500101", "네", "STOP", ""]),
    st.text(max_size=40))
SEGMENT = st.one_of(st.sampled_from(["0", "1", "-1", "99999999999999999999", "x", "%00", "al_" + "0" * 16]),
                    st.text(min_size=1, max_size=12).filter(lambda s: s not in (".", "..")))


@pytest.fixture
async def live(city):
    await city.add(placed("r1", None, {"type": "phone", "number": "010-5550-0101", "handset": "feature_phone"}),
                   answers_sms("+821055500101", reply=None))
    aid = await city.post_alert({"event": "Water cut", "severity": "Minor", "audience": {"residents": ["r1"]},
                                 "content": {"ko": {"headline": "단수", "body": "내일 단수됩니다."}}})
    return city, aid


@FUZZ
@given(hook=st.sampled_from(SIGNED_HOOKS), parts=st.fixed_dictionaries(
    {"aid": st.one_of(st.just("real"), SEGMENT), "rid": st.one_of(st.just("r1"), SEGMENT),
     "k": SEGMENT, "n": SEGMENT, "leg": SEGMENT}),
       form=st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=12)), VALUES, max_size=6),
       query=st.one_of(st.just(""), st.text(max_size=20).map(lambda q: "?lang=" + quote(q))))
# Found by this test, each a 500 before: a step that is not a number; an alert that never was.
@example(hook=SIGNED_HOOKS[2], parts={"aid": "real", "rid": "r1", "k": "0", "n": "0", "leg": "x"}, form={}, query="")
@example(hook=SIGNED_HOOKS[2], parts={"aid": "al_nope", "rid": "r1", "k": "0", "n": "0", "leg": "0"}, form={},
         query="")
async def test_a_signed_webhook_with_any_fields_and_path_is_never_a_server_error(live, hook, parts, form, query):
    city, aid = live
    parts = {k: quote(aid if v == "real" else v, safe="") for k, v in parts.items()}
    path = "/hooks/twilio/" + hook.format(**parts) + query
    url = city.stack.settings.public_url + path
    signature = RequestValidator(city.stack.settings.twilio_auth_token).compute_signature(url, form)
    async with city.http.post(url, data=urlencode(form), headers={
            "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status < 500, (path, form, await r.text())


@FUZZ
@given(path=st.sampled_from(FORM_POSTS), body=st.binary(max_size=600),
       ctype=st.sampled_from(["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=latin-1",
                              "multipart/form-data; boundary=x", "multipart/form-data", "application/json",
                              "text/plain", "", "application/x-www-form-urlencoded; charset=nonsense"]))
# Found by this test, a 500 before: a form in a charset nobody knows.
@example(path="/hooks/twilio/sms/inbound", body=b"a=b", ctype="application/x-www-form-urlencoded; charset=nonsense")
async def test_any_bytes_posted_to_a_webhook_or_form_are_never_a_server_error(live, path, body, ctype):
    city, _ = live
    async with city.http.post(city.api + path, data=body, headers={"Content-Type": ctype} if ctype else {}) as r:
        assert r.status < 500, (path, ctype, body, await r.text())
