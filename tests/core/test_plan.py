"""The fallback rules of docs/design.md, one resident profile at a time (pure logic)."""

from gateway.fallback import (
    ChannelSpec,
    Contact,
    Policy,
    Profile,
    build_plan,
    initial_state,
    pick_language,
)

CHANNELS = {
    "push": ChannelSpec("push", frozenset({"fcm", "webpush"})),
    "sms": ChannelSpec("sms", frozenset({"phone"}), frozenset({"smartphone", "feature_phone"})),
    "voice": ChannelSpec("voice", frozenset({"phone"}), frozenset({"smartphone", "feature_phone", "landline"})),
    "mail": ChannelSpec("mail", frozenset({"postal"})),
}
SMARTPHONE = (Contact("fcm"), Contact("phone", "smartphone"), Contact("postal"))


def channels_of(steps):
    return [[leg[0] for leg in s["l"]] for s in steps]


def plan(*contacts, needs=(), severity="Moderate", dead=(), **policy):
    profile = Profile(("ko",), tuple(contacts), frozenset(needs), frozenset(dead))
    return build_plan(profile, Policy.from_alert({"severity": severity, "policy": policy}), CHANNELS)


def test_smartphone_resident_gets_push_then_sms_then_voice_then_mail():
    assert channels_of(plan(*SMARTPHONE)) == [["push"], ["sms"], ["voice"], ["mail"]]


def test_feature_phone_resident_gets_sms_and_never_push():
    steps = channels_of(plan(Contact("phone", "feature_phone")))
    assert steps == [["sms"], ["voice"]]


def test_landline_gets_voice_only():
    assert channels_of(plan(Contact("phone", "landline"))) == [["voice"]]


def test_blind_resident_is_called_before_being_texted():
    assert channels_of(plan(*SMARTPHONE, needs=["blind"])) == [["push"], ["voice"], ["sms"], ["mail"]]


def test_deaf_resident_is_never_called():
    steps = channels_of(plan(*SMARTPHONE, needs=["deaf"]))
    assert ["voice"] not in steps
    assert steps == [["push"], ["sms"], ["mail"]]


def test_resident_without_a_phone_gets_mail():
    assert channels_of(plan(Contact("postal"))) == [["mail"]]


def test_resident_with_nothing_usable_has_an_empty_plan_and_is_unreachable():
    profile = Profile(("ko",))
    policy = Policy.from_alert({"severity": "Severe"})
    steps = build_plan(profile, policy, CHANNELS)
    assert steps == [] and initial_state(profile, policy, steps) == "unreachable"


def test_extreme_alert_starts_push_and_sms_together():
    steps = channels_of(plan(*SMARTPHONE, severity="Extreme"))
    assert steps[0] == ["push", "sms"]
    assert steps[1:] == [["voice"], ["mail"]]


def test_policy_can_narrow_the_channels():
    assert channels_of(plan(*SMARTPHONE, channels=["sms", "voice"])) == [["sms"], ["voice"]]


def test_dead_contact_points_are_skipped():
    assert channels_of(plan(*SMARTPHONE, dead=[0])) == [["sms"], ["voice"], ["mail"]]


def test_confirmation_defaults_to_acknowledged_for_emergencies_and_delivered_otherwise():
    assert Policy.from_alert({"severity": "Extreme"}).confirmation == "acknowledged"
    assert Policy.from_alert({"severity": "Severe"}).confirmation == "acknowledged"
    assert Policy.from_alert({"severity": "Moderate"}).confirmation == "delivered"
    assert Policy.from_alert({"severity": "Minor", "policy": {"confirmation": "posted"}}).confirmation == "posted"


def test_opted_out_resident_gets_no_non_emergency_alert_but_still_gets_emergencies():
    profile = Profile(("ko",), SMARTPHONE, non_emergency=False)
    minor = Policy.from_alert({"severity": "Minor"})
    severe = Policy.from_alert({"severity": "Severe"})
    assert initial_state(profile, minor, build_plan(profile, minor, CHANNELS)) == "opted_out"
    assert initial_state(profile, severe, build_plan(profile, severe, CHANNELS)) == "planned"


def test_content_follows_the_residents_first_language_the_alert_carries():
    assert pick_language(["vi", "ko"], ["ko", "en"]) == "ko"
    assert pick_language(["zh"], ["ko", "zh-CN"]) == "zh-CN"
    assert pick_language(["zh-CN", "en"], ["en", "zh-cn"]) == "zh-cn"
    assert pick_language(["th"], ["ko", "en"]) == "ko"


def test_a_resident_who_chose_voice_first_is_called_first():
    profile = Profile(("ko",), SMARTPHONE, preferred=("voice", "sms"))
    steps = build_plan(profile, Policy.from_alert({"severity": "Moderate"}), CHANNELS)
    assert channels_of(steps) == [["voice"], ["sms"], ["push"], ["mail"]]


def test_a_deaf_resident_is_never_called_whatever_order_they_chose():
    profile = Profile(("ko",), SMARTPHONE, needs=frozenset({"deaf"}), preferred=("voice", "push"))
    assert ["voice"] not in channels_of(build_plan(profile, Policy.from_alert({"severity": "Moderate"}), CHANNELS))


def test_a_call_is_made_in_the_first_language_the_resident_reads_that_has_a_voice():
    from channels.tts_voices import voice_for

    speaks = lambda lang: voice_for(lang) is not None  # noqa: E731
    # Mongolian first, but Twilio has no Mongolian voice: the call is in Russian, the resident's second.
    assert pick_language(["mn", "ru"], ["ko", "mn", "ru"], speaks) == "ru"
    assert pick_language(["mn", "ru"], ["ko", "mn", "ru"]) == "mn"  # a text message needs no voice
    # None of the alert's languages the resident reads has a voice: the alert's first that has one.
    assert pick_language(["mn"], ["mn", "en"], speaks) == "en"
