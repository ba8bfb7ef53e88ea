"""A drill says so first, on every channel, in the resident's language; a
resident whose language the alert lacks is told so."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest

from channels.base import Message
from channels.notices import languages, notices, words_for
from channels.push import notification
from channels.sms_text import encode_info, render_sms
from channels.voice_script import alert_twiml, machine_twiml

ACTION = "https://gw.example/hooks/twilio/gather/al1/rs1/0/0"
CONTENT = {
    "ko": ("폭염 경보", "오늘 낮 기온이 38도까지 오릅니다. " * 6, "물을 자주 드시고 무더위 쉼터를 이용하세요."),
    "en": ("Heat wave warning", "Temperatures reach 38C today. " * 8, "Drink water often."),
    "vi": ("Cảnh báo nắng nóng", "Hôm nay nhiệt độ lên tới 38 độ.", "Uống nhiều nước."),
}


def drill(language: str = "ko", status: str = "Exercise", readers: tuple[str, ...] = (), **extra) -> Message:
    headline, body, instruction = CONTENT[language]
    return Message("al1", "rs1", 0, 0, language, "Heat wave", "Severe", "Expected", headline, body, instruction,
                   page_url="https://alerts.example/m/al1.Zx9", drill=status,
                   reader_languages=readers or (language,), **extra)


def says(twiml: str) -> list[tuple[str, str]]:
    return [(say.get("language"), "".join(say.itertext())) for say in ET.fromstring(twiml).iter("Say")]


@pytest.mark.parametrize("language", ["ko", "en", "vi"])
def test_a_drill_text_message_says_it_is_a_drill_first_in_the_residents_language(language):
    sms = render_sms(drill(language), handset="smartphone", segment_budget=4)
    first = sms.text.splitlines()[0]
    words = words_for(language)
    assert first == f"[{words['drill_tag']}] {words['drill']}"


@pytest.mark.parametrize("language", ["ko", "en"])
def test_a_drill_still_says_so_when_the_text_falls_back_to_the_short_form(language):
    sms = render_sms(drill(language), handset="feature_phone", segment_budget=1)
    assert sms.used_short_form and sms.segments == 1 == encode_info(sms.text).segments
    assert sms.text.startswith(f"[{words_for(language)['drill_tag']}]")


def test_a_real_alert_says_nothing_of_drills():
    sms = render_sms(drill("en", status=""), handset="smartphone", segment_budget=4)
    assert "DRILL" not in sms.text and sms.text.startswith("[SEVERE WARNING]")


def test_a_drill_call_says_it_is_a_drill_before_anything_else():
    for twiml in (alert_twiml(drill("ko"), gather_action=ACTION, slow=False), machine_twiml(drill("ko"), slow=True)):
        first_language, first_words = says(twiml)[0]
        assert first_language == "ko-KR"
        assert first_words.startswith("이것은 훈련입니다.")
        assert "[" not in first_words  # no bracketed tag read out


def test_a_drill_push_says_so_in_its_title_and_first_line():
    title, body = notification(drill("ko"))
    assert title.startswith("[훈련] ")
    assert body.splitlines()[0] == "[훈련] 이것은 훈련입니다. 실제 상황이 아닙니다."


def test_a_resident_whose_language_the_alert_lacks_is_told_so_in_their_own_language():
    # A Thai reader gets the Korean alert, told in Thai that it is not in their language.
    sms = render_sms(drill("ko", status="", readers=("th",)), handset="smartphone", segment_budget=4)
    assert sms.text.splitlines()[0] == words_for("th")["not_in_language"]
    # Thai has a voice: the notice is spoken in Thai, the message in Korean.
    spoken = says(alert_twiml(drill("ko", status="", readers=("th",)), gather_action=ACTION, slow=False))
    assert spoken[0][0] == "th-TH" and spoken[0][1].startswith(words_for("th")["not_in_language"])
    assert spoken[1][0] == "ko-KR"


def test_without_words_or_a_voice_for_their_language_the_notice_is_in_the_messages_language():
    # No notice words for Swahili: the notice comes in English, the message's language.
    assert notices("en", "", ("sw",)).not_in_language == words_for("en")["not_in_language"]
    # Mongolian has words but Twilio has no voice for it: the call says the notice in Korean.
    spoken = says(alert_twiml(drill("ko", status="", readers=("mn",)), gather_action=ACTION, slow=False))
    assert spoken[0][0] == "ko-KR" and spoken[0][1].startswith(words_for("ko")["not_in_language"])
    sms = render_sms(drill("ko", status="Test", readers=("mn",)), handset="smartphone", segment_budget=4)
    assert sms.text.splitlines()[:2] == [f"[{words_for('mn')['drill_tag']}] {words_for('mn')['drill']}",
                                        words_for("mn")["not_in_language"]]


def test_a_resident_who_reads_the_alerts_language_gets_no_language_notice():
    assert not notices("zh-CN", "", ("zh", "ko"))
    assert not notices("ko", "", ())  # languages unknown: taken to read it


def test_every_notice_file_has_every_notice():
    keys = set(words_for("en"))
    assert len(languages()) >= 13
    for lang in languages():
        assert set(words_for(lang)) == keys, lang
        assert all(words_for(lang)[k].strip() for k in keys), lang


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils (pdftotext)")
def test_a_drill_letter_says_it_is_a_drill_before_the_alert():
    from channels.letters import Address, Layout, render
    from tests.channels.test_letters import text_of

    letter = render(drill("ko"), Address("김영희", ("세종대로 209",), "03151"), Layout.for_needs({"large_print"}))
    text = text_of(letter.pdf)
    assert "이것은 훈련입니다." in text
    assert text.index("훈련입니다") < text.index("폭염 경보")
