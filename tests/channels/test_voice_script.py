"""What a resident hears on an alert call, and what their keypress means."""

import xml.etree.ElementTree as ET

import pytest

from channels.base import Message
from channels.tts_voices import voice_for
from channels.voice_script import alert_twiml, gather_twiml, machine_twiml

ACTION = "https://gw.example/hooks/twilio/gather/al1/rs1/2/1"


def create_message(language="ko", **fields) -> Message:
    text = {
        "ko": dict(event="폭염", headline="폭염경보 발령", body="낮 최고기온 38도. 노약자는 특히 주의하세요", instruction="외출을 자제하세요."),
        "en": dict(event="Flood", headline="River Han is rising", body="Water may reach the road.", instruction="Move to higher ground."),
    }[language if language in ("ko", "en") else "en"]
    defaults = dict(
        alert_id="al1", resident_id="rs1", step=2, attempt=1, language=language,
        severity="Extreme", urgency="Immediate", response_options=(("1", "OK"), ("2", "I need help")), **text,
    )
    return Message(**{**defaults, **fields})


def parse(twiml: str) -> ET.Element:
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    return root


def spoken(element: ET.Element) -> str:
    return " ".join("".join(say.itertext()) for say in element.iter("Say"))


def test_korean_resident_hears_korean_voice():
    root = parse(alert_twiml(create_message("ko"), gather_action=ACTION, slow=False))
    says = list(root.iter("Say"))
    assert says and all(say.get("language") == "ko-KR" for say in says)
    assert all(say.get("voice") == "Google.ko-KR-Standard-A" for say in says)
    assert "위급재난" in spoken(root)
    assert "폭염경보 발령" in spoken(root) and "외출을 자제하세요" in spoken(root)


@pytest.mark.parametrize(
    "language, twilio_language",
    [("ko", "ko-KR"), ("ko-KR", "ko-KR"), ("en", "en-US"), ("zh", "cmn-CN"), ("vi-VN", "vi-VN"), ("ja", "ja-JP"),
     ("th", "th-TH"), ("zh-TW", "cmn-TW"), ("ru-RU", "ru-RU"), ("tl", "fil-PH")],
)
def test_each_language_has_a_voice_of_its_own(language, twilio_language):
    lang, voice = voice_for(language)
    assert lang == twilio_language
    assert voice.startswith(("Google.", "Polly."))


def test_a_language_twilio_has_no_voice_for_gets_none_rather_than_a_wrong_one():
    assert voice_for("mn") is None and voice_for("km-KH") is None


def test_call_opens_with_a_pause_then_reads_the_message():
    root = parse(alert_twiml(create_message("en"), gather_action=ACTION, slow=False))
    assert [child.tag for child in root][:3] == ["Pause", "Say", "Gather"]
    message = spoken(root[1])
    for part in ("emergency alert", "Flood", "River Han is rising", "Water may reach the road", "Move to higher ground"):
        assert part in message


def test_resident_is_asked_to_press_1_or_9():
    root = parse(alert_twiml(create_message("en"), gather_action=ACTION, slow=False))
    gather = root.find("Gather")
    assert gather.attrib == {"numDigits": "1", "action": ACTION, "method": "POST", "timeout": "8"}
    prompt = spoken(gather)
    assert "press 1" in prompt and "press 9" in prompt
    assert "I need help: press 2" in prompt


def test_korean_prompt_is_in_korean():
    prompt = spoken(parse(alert_twiml(create_message("ko"), gather_action=ACTION, slow=False)).find("Gather"))
    assert "1번을 눌러주세요" in prompt and "9번" in prompt


def test_silent_resident_hears_the_message_once_more_then_goodbye():
    root = parse(alert_twiml(create_message("en"), gather_action=ACTION, slow=False))
    tags = [child.tag for child in root]
    assert tags == ["Pause", "Say", "Gather", "Gather", "Say", "Hangup"]
    again = spoken(root[3])
    assert "I repeat" in again and "River Han is rising" in again
    assert "Goodbye" in spoken(root[4])


def test_low_literacy_resident_hears_slow_speech():
    root = parse(alert_twiml(create_message("ko"), gather_action=ACTION, slow=True))
    for say in root.iter("Say"):
        prosody = say.find("prosody")
        assert prosody is not None and prosody.get("rate") == "slow"
    message = root.find("Say/prosody")
    sentences = [s.text for s in message.findall("s")]
    assert sentences[:3] == ["위급재난 안내입니다.", "폭염.", "폭염경보 발령."]
    assert len(message.findall("break")) == len(sentences) - 1


def test_regular_speech_has_no_ssml():
    root = parse(alert_twiml(create_message("en"), gather_action=ACTION, slow=False))
    assert root.find(".//prosody") is None


def test_agency_text_is_escaped_in_twiml():
    message = create_message("en", headline="Bridges <A> & <B> closed")
    root = parse(alert_twiml(message, gather_action=ACTION + "?a=1&b=2", slow=False))
    assert "Bridges <A> & <B> closed" in spoken(root)
    assert root.find("Gather").get("action") == ACTION + "?a=1&b=2"


def test_pressing_1_acknowledges_with_thanks():
    twiml, meaning = gather_twiml(create_message("ko"), "1", gather_action=ACTION, slow=False)
    root = parse(twiml)
    assert meaning == "acknowledged"
    assert "감사합니다" in spoken(root)
    assert [child.tag for child in root] == ["Say", "Hangup"]


def test_pressing_9_repeats_message():
    twiml, meaning = gather_twiml(create_message("en"), "9", gather_action=ACTION, slow=False)
    root = parse(twiml)
    assert meaning is None
    assert root[0].tag == "Say" and "I repeat" in spoken(root[0])
    assert "River Han is rising" in spoken(root[1])
    assert root.find("Gather").get("action") == ACTION


def test_pressing_a_response_option_is_recorded_as_the_answer():
    twiml, meaning = gather_twiml(create_message("en"), "2", gather_action=ACTION, slow=False)
    assert meaning == "response:2"
    assert "Thank you" in spoken(parse(twiml))


def test_wrong_key_asks_again():
    twiml, meaning = gather_twiml(create_message("en"), "5", gather_action=ACTION, slow=False)
    root = parse(twiml)
    assert meaning is None
    assert "not one of the choices" in spoken(root[0])
    assert "press 1" in spoken(root.find("Gather"))


def test_slow_speech_stays_slow_after_a_keypress():
    twiml, _ = gather_twiml(create_message("en"), "1", gather_action=ACTION, slow=True)
    assert parse(twiml).find("Say/prosody").get("rate") == "slow"


def test_answering_machine_gets_the_message_without_a_prompt():
    root = parse(machine_twiml(create_message("en"), slow=False))
    assert root.find(".//Gather") is None
    assert "River Han is rising" in spoken(root)
    assert root[-1].tag == "Hangup"


def test_language_without_voice_template_is_read_in_english():
    root = parse(alert_twiml(create_message("sw"), gather_action=ACTION, slow=False))
    assert root.find("Say").get("language") == "en-US"
    assert "press 1" in spoken(root.find("Gather"))


def test_an_alert_in_a_language_we_have_no_call_words_for_is_read_in_its_own_voice():
    # The agency wrote Thai; the call's own phrases are English, each in its own voice.
    thai = create_message("th", event="คลื่นความร้อน", headline="เตือนภัยคลื่นความร้อน",
                          body="วันนี้อุณหภูมิสูงถึง 38 องศา", instruction="ดื่มน้ำบ่อยๆ", reader_languages=("th",))
    root = parse(alert_twiml(thai, gather_action=ACTION, slow=False))
    said = [(say.get("language"), "".join(say.itertext())) for say in root.iter("Say")]
    assert said[0] == ("en-US", "This is an emergency alert.")
    assert said[1][0] == "th-TH" and "เตือนภัยคลื่นความร้อน" in said[1][1]
    assert said[2][0] == "en-US" and "press 1" in said[2][1]
    assert all(voice.startswith("Google.th-TH") for lang, voice in
               ((s.get("language"), s.get("voice")) for s in root.iter("Say")) if lang == "th-TH")
