"""What a resident's SMS reply means, and what we text back."""

import pytest

from channels.replies import (
    ACK,
    FREE_TEXT,
    HELP,
    OPT_IN,
    OPT_OUT,
    RESPONSE,
    Reply,
    classify_reply,
    reply_confirmation,
)
from channels.sms_text import GSM7, encode_info


@pytest.mark.parametrize("body", ["1", "yes", "Y", "ok", "OK!", "네", "예", "응", "확인", "받았습니다", " 네. "])
def test_resident_acknowledges_the_way_they_talk(body):
    assert classify_reply(body) == Reply(ACK)


def test_reply_ne_acknowledges():
    assert classify_reply("네") == Reply(ACK)


def test_full_width_one_from_a_korean_keyboard_acknowledges():
    assert classify_reply("１") == Reply(ACK)


def test_keycap_emoji_one_acknowledges():
    assert classify_reply("1\ufe0f\u20e3") == Reply(ACK)


def test_response_option_is_an_answer_that_also_acknowledges():
    assert classify_reply("2", ["1", "2", "3"]) == Reply(RESPONSE, "2")
    assert classify_reply(" ２ ", ["1", "2"]) == Reply(RESPONSE, "2")


def test_option_one_is_a_plain_acknowledgement():
    assert classify_reply("1", ["1", "2"]) == Reply(ACK)


def test_digit_that_is_no_option_is_kept_for_the_operator():
    assert classify_reply("7", ["1", "2"]) == Reply(FREE_TEXT)


@pytest.mark.parametrize(
    "body", ["STOP", "stop", "Stop.", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ＳＴＯＰ", "중지", "거부", "수신거부", "수신 거부"]
)
def test_resident_opts_out(body):
    assert classify_reply(body, ["1", "2"]) == Reply(OPT_OUT)


@pytest.mark.parametrize("body", ["START", "unstop", "Start!"])
def test_resident_opts_back_in(body):
    assert classify_reply(body) == Reply(OPT_IN)


@pytest.mark.parametrize("body", ["HELP", "info", "help?", "도움"])
def test_resident_asks_for_help(body):
    assert classify_reply(body) == Reply(HELP)


def test_opt_out_wins_over_a_response_code_of_the_same_name():
    assert classify_reply("stop", ["stop"]) == Reply(OPT_OUT)


@pytest.mark.parametrize("body", ["We need water at 12 Main St", "1 but my mother did not", "", "   "])
def test_anything_else_is_free_text_for_the_operator(body):
    assert classify_reply(body) == Reply(FREE_TEXT)


def test_stop_opts_out_with_confirmation_text():
    assert classify_reply("STOP").kind == OPT_OUT
    text = reply_confirmation(OPT_OUT, "en")
    assert "no longer get non-emergency alerts" in text
    assert "Emergency alerts will still reach you" in text
    assert "Reply START" in text


def test_korean_resident_gets_korean_opt_out_confirmation():
    text = reply_confirmation(OPT_OUT, "ko-KR")
    assert "긴급 재난 문자는 계속 받으십니다" in text
    assert "START" in text


@pytest.mark.parametrize("language", ["en", "ko", "zh", "vi", "ja"])
@pytest.mark.parametrize("kind", [ACK, RESPONSE, OPT_OUT, OPT_IN, HELP, FREE_TEXT])
def test_every_reply_is_answered_in_a_short_sms(language, kind):
    text = reply_confirmation(kind, language)
    assert text and "\n" not in text
    assert encode_info(text).segments <= 2


def test_english_confirmations_stay_in_gsm7():
    for kind in (ACK, RESPONSE, OPT_OUT, OPT_IN, HELP, FREE_TEXT):
        assert encode_info(reply_confirmation(kind, "en")).encoding == GSM7


def test_help_names_the_keywords():
    text = reply_confirmation(HELP, "en")
    assert "STOP" in text and "START" in text and "1" in text
    assert "중지" in reply_confirmation(HELP, "ko")


def test_language_without_texts_gets_english():
    assert reply_confirmation(OPT_OUT, "fr") == reply_confirmation(OPT_OUT, "en")


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        reply_confirmation("__class__", "en")
