"""The Twilio <Say> voices the gateway speaks with, per language.

Google voices throughout (Twilio's `Google.<name>`): Twilio offers no Polly
voice for Vietnamese, and Google's accept the SSML used for slow speech in
every language here.  Keys are BCP 47 tags as agencies and residents write
them, lower case; a bare language names its usual region.  A language not
here has no voice: the call is made in another language the alert carries
(channels/voice.py), and nothing is read in a voice of the wrong language.

From Twilio's "Text-to-speech voices and languages" table (Google Standard voices).
"""

from __future__ import annotations

# tag -> (Twilio <Say> language, voice)
VOICES: dict[str, tuple[str, str]] = {
    "af": ("af-ZA", "Google.af-ZA-Standard-A"),
    "ar": ("ar-XA", "Google.ar-XA-Standard-A"),
    "bg": ("bg-BG", "Google.bg-BG-Standard-A"),
    "bn": ("bn-IN", "Google.bn-IN-Standard-A"),
    "ca": ("ca-ES", "Google.ca-ES-Standard-A"),
    "cs": ("cs-CZ", "Google.cs-CZ-Standard-A"),
    "da": ("da-DK", "Google.da-DK-Standard-A"),
    "de": ("de-DE", "Google.de-DE-Standard-A"),
    "el": ("el-GR", "Google.el-GR-Standard-A"),
    "en": ("en-US", "Google.en-US-Standard-C"),
    "en-au": ("en-AU", "Google.en-AU-Standard-A"),
    "en-gb": ("en-GB", "Google.en-GB-Standard-A"),
    "en-in": ("en-IN", "Google.en-IN-Standard-A"),
    "es": ("es-ES", "Google.es-ES-Standard-A"),
    "es-us": ("es-US", "Google.es-US-Standard-A"),
    "eu": ("eu-ES", "Google.eu-ES-Standard-A"),
    "fi": ("fi-FI", "Google.fi-FI-Standard-A"),
    "fil": ("fil-PH", "Google.fil-PH-Standard-A"),
    # Filipino is written `tl` (Tagalog) as often as `fil`.
    "tl": ("fil-PH", "Google.fil-PH-Standard-A"),
    "fr": ("fr-FR", "Google.fr-FR-Standard-A"),
    "fr-ca": ("fr-CA", "Google.fr-CA-Standard-A"),
    "gl": ("gl-ES", "Google.gl-ES-Standard-A"),
    "gu": ("gu-IN", "Google.gu-IN-Standard-A"),
    "he": ("he-IL", "Google.he-IL-Standard-A"),
    "hi": ("hi-IN", "Google.hi-IN-Standard-A"),
    "hu": ("hu-HU", "Google.hu-HU-Standard-A"),
    "id": ("id-ID", "Google.id-ID-Standard-A"),
    "is": ("is-IS", "Google.is-IS-Standard-A"),
    "it": ("it-IT", "Google.it-IT-Standard-A"),
    "ja": ("ja-JP", "Google.ja-JP-Standard-B"),
    "kn": ("kn-IN", "Google.kn-IN-Standard-A"),
    "ko": ("ko-KR", "Google.ko-KR-Standard-A"),
    "lt": ("lt-LT", "Google.lt-LT-Standard-A"),
    "lv": ("lv-LV", "Google.lv-LV-Standard-A"),
    "ml": ("ml-IN", "Google.ml-IN-Standard-A"),
    "mr": ("mr-IN", "Google.mr-IN-Standard-A"),
    "ms": ("ms-MY", "Google.ms-MY-Standard-A"),
    "nb": ("nb-NO", "Google.nb-NO-Standard-A"),
    "no": ("nb-NO", "Google.nb-NO-Standard-A"),
    "nl": ("nl-NL", "Google.nl-NL-Standard-A"),
    "nl-be": ("nl-BE", "Google.nl-BE-Standard-A"),
    "pa": ("pa-IN", "Google.pa-IN-Standard-A"),
    "pl": ("pl-PL", "Google.pl-PL-Standard-A"),
    "pt": ("pt-BR", "Google.pt-BR-Standard-A"),
    "pt-pt": ("pt-PT", "Google.pt-PT-Standard-A"),
    "ro": ("ro-RO", "Google.ro-RO-Standard-A"),
    "ru": ("ru-RU", "Google.ru-RU-Standard-A"),
    "sk": ("sk-SK", "Google.sk-SK-Standard-A"),
    "sr": ("sr-RS", "Google.sr-RS-Standard-A"),
    "sv": ("sv-SE", "Google.sv-SE-Standard-A"),
    "ta": ("ta-IN", "Google.ta-IN-Standard-A"),
    "te": ("te-IN", "Google.te-IN-Standard-A"),
    "th": ("th-TH", "Google.th-TH-Standard-A"),
    "tr": ("tr-TR", "Google.tr-TR-Standard-A"),
    "uk": ("uk-UA", "Google.uk-UA-Standard-A"),
    "vi": ("vi-VN", "Google.vi-VN-Standard-A"),
    # Twilio names Mandarin and Cantonese by their ISO 639-3 codes.
    "zh": ("cmn-CN", "Google.cmn-CN-Standard-A"),
    "zh-cn": ("cmn-CN", "Google.cmn-CN-Standard-A"),
    "zh-hans": ("cmn-CN", "Google.cmn-CN-Standard-A"),
    "zh-tw": ("cmn-TW", "Google.cmn-TW-Standard-A"),
    "zh-hant": ("cmn-TW", "Google.cmn-TW-Standard-A"),
    "zh-hk": ("yue-HK", "Google.yue-HK-Standard-A"),
    "yue": ("yue-HK", "Google.yue-HK-Standard-A"),
}


def voice_for(language: str) -> tuple[str, str] | None:
    """(Twilio language, voice) for a BCP 47 tag: the tag, then its shorter forms; None: no voice."""
    parts = language.strip().replace("_", "-").lower().split("-")
    for n in range(len(parts), 0, -1):
        found = VOICES.get("-".join(parts[:n]))
        if found:
            return found
    return None
