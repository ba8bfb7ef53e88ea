"""What a resident reads in an SMS, on a smartphone or a 2G/3G feature phone."""

import dataclasses

import pytest

from channels.base import Message
from channels.sms_text import GSM7, UCS2, encode_info, render_sms

PAGE = "https://alerts.example/m/Zx81"


def create_message(language="en", **fields) -> Message:
    text = {
        "ko": dict(
            event="폭염",
            headline="폭염경보 발령",
            body="오늘 낮 최고기온 38도로 매우 덥습니다. " * 14,
            instruction="외출을 자제하고 물을 자주 드세요.",
        ),
        "en": dict(
            event="Heat wave",
            headline="Heat wave warning",
            body="Today it will reach 38C in the whole district. " * 6,
            instruction="Stay indoors and drink water often.",
        ),
    }.get(language, dict(event="Heat", headline="Heat", body="Hot.", instruction="Drink water."))
    defaults = dict(
        alert_id="al1", resident_id="rs1", step=1, attempt=1, language=language,
        severity="Extreme", urgency="Immediate", page_url=PAGE, **text,
    )
    return Message(**{**defaults, **fields})


def test_english_alert_is_gsm7():
    sms = render_sms(create_message("en", body="Stay away from the river."), handset="smartphone", segment_budget=3)
    assert sms.encoding == GSM7
    assert not sms.used_short_form
    assert sms.text.startswith("[EMERGENCY ALERT] Heat wave warning")
    assert "Reply 1 if you got this" in sms.text


def test_curly_quotes_and_dashes_from_the_agency_keep_english_in_gsm7():
    message = create_message("en", headline="\u201cHeat\u201d warning \u2014 today\u2019s peak", body="Hot\u2026")
    sms = render_sms(message, handset="feature_phone", segment_budget=2)
    assert sms.encoding == GSM7
    assert "\"Heat\" warning - today's peak" in sms.text


def test_korean_alert_to_feature_phone_fits_budget_as_ucs2_without_link():
    message = create_message("ko")
    assert len(message.body) >= 300
    sms = render_sms(message, handset="feature_phone", segment_budget=5)
    assert sms.encoding == UCS2
    assert sms.segments <= 5
    assert encode_info(sms.text).segments == sms.segments
    assert not sms.link_included and PAGE not in sms.text
    assert sms.used_short_form
    assert sms.text.startswith("[위급재난] 폭염경보 발령")
    assert "외출을 자제하고" in sms.text
    assert "받으셨으면 1을 보내주세요" in sms.text


def test_smartphone_resident_gets_the_page_link():
    sms = render_sms(create_message("ko"), handset="smartphone", segment_budget=10)
    assert sms.link_included and PAGE in sms.text


def test_feature_phone_gets_link_when_the_caller_says_it_can_open_it():
    sms = render_sms(create_message("en"), handset="feature_phone", segment_budget=5, with_link=True)
    assert sms.link_included and PAGE in sms.text


def test_smartphone_link_can_be_left_out():
    sms = render_sms(create_message("en"), handset="smartphone", segment_budget=5, with_link=False)
    assert not sms.link_included and PAGE not in sms.text


def test_landline_never_gets_sms():
    with pytest.raises(ValueError):
        render_sms(create_message("en"), handset="landline", segment_budget=5)


def test_agency_short_form_is_used_when_the_full_text_is_too_long():
    message = create_message("en", short="Heat wave: stay indoors, drink water.")
    sms = render_sms(message, handset="feature_phone", segment_budget=1)
    assert sms.used_short_form
    assert sms.segments == 1
    assert sms.text.startswith("[EMERGENCY ALERT] Heat wave: stay indoors, drink water.")


@pytest.mark.parametrize("language", ["ko", "en", "zh", "vi", "ja", "fr"])
@pytest.mark.parametrize("handset", ["smartphone", "feature_phone"])
@pytest.mark.parametrize("budget", [1, 2, 3])
def test_every_alert_fits_the_segment_budget(language, handset, budget):
    message = create_message(
        language,
        headline="가나다라 " * 40 if language == "ko" else "Heat wave warning for the whole district " * 8,
        body="😀 " * 200,
        response_options=(("1", "OK"), ("2", "I need help to leave my home")),
    )
    sms = render_sms(message, handset=handset, segment_budget=budget)
    assert encode_info(sms.text).segments <= budget
    assert sms.segments <= budget


def test_trimmed_short_form_ends_at_a_word_with_an_ellipsis():
    message = create_message("en", headline=" ".join(["evacuate"] * 60), instruction="")
    sms = render_sms(message, handset="feature_phone", segment_budget=1)
    first_line = sms.text.splitlines()[0]
    assert first_line.endswith("evacuate...")
    assert sms.encoding == GSM7 and sms.segments == 1


def test_emoji_is_never_cut_in_half():
    message = create_message("ko", headline="🔥" * 100, short="", instruction="")
    sms = render_sms(message, handset="feature_phone", segment_budget=1)
    sms.text.encode("utf-16-le")  # a lone surrogate would raise
    assert "🔥" in sms.text and sms.segments == 1


def test_language_without_template_falls_back_to_english_frame():
    sms = render_sms(create_message("fr"), handset="feature_phone", segment_budget=3)
    assert "Reply 1 if you got this" in sms.text


def test_korean_region_tag_uses_korean_template():
    message = dataclasses.replace(create_message("ko"), language="ko-KR")
    sms = render_sms(message, handset="feature_phone", segment_budget=5)
    assert "받으셨으면 1을 보내주세요" in sms.text


def test_response_options_are_offered_in_the_sms():
    message = create_message("en", body="Flooding.", response_options=(("1", "Got it"), ("2", "I need help")))
    sms = render_sms(message, handset="feature_phone", segment_budget=3)
    assert "Reply 2: I need help" in sms.text
    assert "Reply 1: Got it" not in sms.text


def test_gsm7_fits_160_characters_in_one_segment():
    assert encode_info("a" * 160) == encode_info("a" * 160).__class__(GSM7, 160, 1)
    assert encode_info("a" * 161).segments == 2
    assert encode_info("a" * 306).segments == 2
    assert encode_info("a" * 307).segments == 3


def test_euro_sign_costs_two_septets():
    info = encode_info("€")
    assert (info.encoding, info.units) == (GSM7, 2)
    assert encode_info("^{}\\[~]|").units == 16


def test_escaped_character_is_not_split_over_two_parts():
    # 306 septets would make two full parts, but the euro after 152 septets
    # cannot straddle the 153 boundary and moves whole to the second part.
    assert encode_info("a" * 151 + "€" + "a" * 153).segments == 2
    assert encode_info("a" * 152 + "€" + "a" * 152).segments == 3


def test_korean_forces_ucs2():
    info = encode_info("a" * 10 + "가")
    assert (info.encoding, info.units, info.segments) == (UCS2, 11, 1)
    assert encode_info("가" * 70).segments == 1
    assert encode_info("가" * 71).segments == 2
    assert encode_info("가" * 134).segments == 2


def test_emoji_costs_two_ucs2_units():
    assert encode_info("😀").units == 2
    assert encode_info("😀" * 35).segments == 1
    assert encode_info("😀" * 36).segments == 2
    # 134 units would make two full parts, but the pair after 66 units
    # cannot straddle the 67 boundary and moves whole to the second part.
    assert encode_info("가" * 65 + "😀" + "가" * 67).segments == 2
    assert encode_info("가" * 66 + "😀" + "가" * 66).segments == 3
