"""The severity policy table (gateway/fallback.py) and what it does to plans."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gateway import fallback
from gateway.fallback import (
    EMERGENCY,
    ChannelSpec,
    Contact,
    Policy,
    Profile,
    build_plan,
    first_send_at_ms,
    initial_state,
    quiet_until,
    rule_for,
    turn_of,
)
from gateway.schemas import SEVERITIES, URGENCIES

KST = timezone(timedelta(hours=9))
SPECS = {
    "push": ChannelSpec("push", frozenset({"fcm", "webpush"})),
    "sms": ChannelSpec("sms", frozenset({"phone"}), frozenset({"smartphone", "feature_phone"})),
    "voice": ChannelSpec("voice", frozenset({"phone"}), frozenset({"smartphone", "feature_phone", "landline"})),
    "mail": ChannelSpec("mail", frozenset({"postal"})),
}
SMARTPHONE_AND_LETTERBOX = Profile(("ko",), (Contact("fcm"), Contact("phone", "smartphone"), Contact("postal")))
LETTERBOX_ONLY = Profile(("ko",), (Contact("postal"),))


def policy(severity: str, urgency: str = "Expected", **p) -> Policy:
    return Policy.from_alert({"severity": severity, "urgency": urgency, "policy": p})


def first_channels(profile: Profile, pol: Policy) -> list[str]:
    return [leg[0] for leg in build_plan(profile, pol, SPECS)[0]["l"]]


# The table itself ------------------------------------------------------------------


@pytest.mark.parametrize("sev", SEVERITIES)
@pytest.mark.parametrize("urg", URGENCIES)
def test_every_severity_and_urgency_has_a_rule(sev, urg):
    assert rule_for(sev, urg).severity == sev


def test_extreme_immediate_needs_an_acknowledgement_ignores_quiet_hours_and_texts_at_once():
    rule = rule_for("Extreme", "Immediate")
    assert rule.confirmation == "acknowledged"
    assert not rule.quiet_hours
    assert rule.parallel_first
    assert "mail" not in rule.channels  # a letter arrives long after the danger


def test_severe_needs_an_acknowledgement():
    assert rule_for("Severe", "Expected").confirmation == "acknowledged"
    assert not rule_for("Severe", "Expected").quiet_hours


def test_moderate_is_closed_by_delivery():
    assert rule_for("Moderate").confirmation == "delivered"
    assert not rule_for("Moderate").quiet_hours


def test_minor_respects_quiet_hours_accepts_delivery_and_may_go_by_mail():
    rule = rule_for("Minor", "Future")
    assert rule.quiet_hours and rule.confirmation == "delivered" and "mail" in rule.channels


def test_emergency_rows_are_the_planners_emergencies():
    assert {r.severity for r in fallback.TABLE if r.emergency} == set(EMERGENCY)


def test_an_evacuation_goes_before_lesser_alerts_at_the_workers_whatever_its_policy_says():
    extreme = {"severity": "Extreme", "urgency": "Immediate"}
    assert turn_of(extreme) < turn_of({"severity": "Extreme", "urgency": "Expected"}) \
        < turn_of({"severity": "Severe"}) < turn_of({"severity": "Moderate"}) < turn_of({"severity": "Minor"})
    # "Unknown" may be anything: it waits no longer than a Moderate alert.
    assert turn_of({"severity": "Unknown"}) == turn_of({"severity": "Moderate"})
    assert turn_of({"severity": "Minor", "policy": {"confirmation": "acknowledged"}}) == turn_of({"severity": "Minor"})


def test_the_markdown_table_has_a_row_per_rule():
    lines = fallback.markdown().splitlines()
    assert len(lines) == 2 + len(fallback.TABLE)
    assert lines[2].startswith("| Extreme | Immediate | `acknowledged` | ignored | push and SMS together")


# The table in the plans ------------------------------------------------------------


def test_policy_reads_its_defaults_from_the_table():
    for rule in fallback.TABLE:
        pol = policy(rule.severity, rule.urgency or "Expected")
        assert pol.confirmation == rule.confirmation
        assert pol.quiet_hours == rule.quiet_hours
        assert pol.parallel_first == rule.parallel_first
        assert set(pol.channels) == set(rule.channels)


def test_an_alerts_own_policy_still_wins():
    pol = policy("Extreme", "Immediate", confirmation="delivered", channels=["sms", "mail"], parallel_first=False)
    assert pol.confirmation == "delivered"
    assert pol.channels == ("sms", "mail")
    assert not pol.parallel_first


def test_extreme_immediate_starts_push_and_sms_together():
    assert first_channels(SMARTPHONE_AND_LETTERBOX, policy("Extreme", "Immediate")) == ["push", "sms"]


def test_a_severe_alert_starts_with_push_alone():
    assert first_channels(SMARTPHONE_AND_LETTERBOX, policy("Severe")) == ["push"]


def test_a_resident_with_only_a_letterbox_is_unreachable_at_once_in_an_extreme_immediate_alert():
    pol = policy("Extreme", "Immediate")
    steps = build_plan(LETTERBOX_ONLY, pol, SPECS)
    assert steps == [] and initial_state(LETTERBOX_ONLY, pol, steps) == "unreachable"


def test_a_resident_with_only_a_letterbox_gets_a_minor_alert_by_mail():
    assert first_channels(LETTERBOX_ONLY, policy("Minor")) == ["mail"]


# Quiet hours -------------------------------------------------------------------------

NIGHT = {"start": "22:00", "end": "07:00", "tz": "Asia/Seoul"}


def test_inside_quiet_hours_that_span_midnight_the_first_step_waits_for_the_morning():
    late = datetime(2025, 7, 1, 23, 30, tzinfo=KST)
    assert quiet_until(NIGHT, late) == datetime(2025, 7, 2, 7, 0, tzinfo=KST)
    early = datetime(2025, 7, 2, 3, 0, tzinfo=KST)
    assert quiet_until(NIGHT, early) == datetime(2025, 7, 2, 7, 0, tzinfo=KST)


def test_outside_quiet_hours_nothing_waits():
    assert quiet_until(NIGHT, datetime(2025, 7, 1, 12, 0, tzinfo=KST)) is None
    assert quiet_until(NIGHT, datetime(2025, 7, 2, 7, 0, tzinfo=KST)) is None  # the end is not quiet
    assert quiet_until(None, datetime(2025, 7, 1, 23, 0, tzinfo=KST)) is None


def test_quiet_hours_within_one_day():
    nap = {"start": "13:00", "end": "15:00", "tz": "Asia/Seoul"}
    assert quiet_until(nap, datetime(2025, 7, 1, 14, 0, tzinfo=KST)) == datetime(2025, 7, 1, 15, 0, tzinfo=KST)
    assert quiet_until(nap, datetime(2025, 7, 1, 16, 0, tzinfo=KST)) is None


def test_quiet_hours_are_read_in_the_residents_own_time_zone():
    # 23:30 in Seoul is 14:30 UTC: quiet for a Seoul resident, not for one in London (15:30 BST).
    now = datetime(2025, 7, 1, 14, 30, tzinfo=timezone.utc)
    assert quiet_until(NIGHT, now) is not None
    assert quiet_until({**NIGHT, "tz": "Europe/London"}, now) is None


def test_quiet_hours_without_a_zone_are_read_in_the_service_areas():
    assert quiet_until({"start": "22:00", "end": "07:00"}, datetime(2025, 7, 1, 23, 0, tzinfo=KST)) is not None
    assert quiet_until({**NIGHT, "tz": "Not/AZone"}, datetime(2025, 7, 1, 23, 0, tzinfo=KST)) is not None


def test_equal_start_and_end_mean_no_quiet_hours():
    assert quiet_until({"start": "22:00", "end": "22:00"}, datetime(2025, 7, 1, 22, 0, tzinfo=KST)) is None


def test_only_a_rule_that_respects_quiet_hours_holds_the_first_step():
    late_ms = int(datetime(2025, 7, 1, 23, 30, tzinfo=KST).timestamp() * 1000)
    morning_ms = int(datetime(2025, 7, 2, 7, 0, tzinfo=KST).timestamp() * 1000)
    assert first_send_at_ms(NIGHT, True, late_ms) == morning_ms
    assert first_send_at_ms(NIGHT, False, late_ms) is None
