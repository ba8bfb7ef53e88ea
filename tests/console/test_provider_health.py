"""Provider health read from delivery histories (gateway/console/providers.py)."""

from __future__ import annotations

from gateway.console.providers import read_history

PLAN = [{"l": [["sms", 0]], "t": 60}, {"l": [["voice", 0]], "t": 600}]


def test_a_provider_that_never_answers_a_send_shows_as_failing():
    tallies = {}
    read_history(PLAN, ["1|0|0|*|claimed|||", "15001|0|0|0|unanswered|twilio||timeout",
                        "60001|0|0|*|timed_out|||", "60002|1|0|*|claimed|||", "60100|1|0|0|queued|twilio|CA1|"],
                 tallies)
    assert dict(tallies["twilio"].results) == {("sms", "failed"): 1, ("voice", "queued"): 1}
    assert tallies["twilio"].error_rate == 0.5


def test_a_send_unanswered_that_went_after_all_counts_as_delivered():
    tallies = {}
    read_history(PLAN, ["1|0|0|*|claimed|||", "15001|0|0|0|unanswered|twilio||timeout",
                        "15200|0|0|0|delivered|twilio|SM1|"], tallies)
    assert dict(tallies["twilio"].results) == {("sms", "delivered"): 1}
