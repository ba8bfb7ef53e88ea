"""The form the gateway posts to Twilio is byte for byte what urlencode would write."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from channels.twilio import form_body


def test_the_posted_form_matches_urlencode_for_every_kind_of_value():
    forms = [
        {"To": "+821012345678", "From": "+15005550006", "Body": "폭염 경보: 38도 & 물 = 생명 +100%",
         "StatusCallback": "https://gw.example/hooks/twilio/sms/a1/r 1/0/0/0?t=17"},
        {"StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"], "Timeout": 30,
         "MachineDetection": "Enable", "Url": "https://gw.example/voice?x=1&y=ü"},
        {"Body": "", "Emoji": "🔥\n줄바꿈"},
        {"Every byte": "".join(map(chr, range(256))), "Wider": "".join(map(chr, range(256, 0x3000, 7)))},
    ]
    for form in forms * 2:  # the second pass reads the quoting cache
        assert form_body(form) == urlencode(form, doseq=True).encode()
        assert parse_qs(form_body(form).decode(), keep_blank_values=True) == parse_qs(
            urlencode(form, doseq=True), keep_blank_values=True)
