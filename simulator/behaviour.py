"""How each simulated resident behaves, looked up by the address the gateway used.

The city generator writes one resident per NDJSON line:

    {"resident": "r000001", "phones": ["+821012345678"], "fcm_tokens": [...],
     "webpush_endpoints": [...], "postal": ["<postcode>|<first line>"],
     "sms": {"outcome": "delivered", "error_code": null, "delay_s": 2.0,
             "reply": "1", "reply_after_s": 20.0},
     "voice": {"answer": "human", "ring_s": 8.0, "press": ["1"], "after_s": 0},
     "push": {"token_state": "valid", "ack": true, "ack_after_s": 15.0},
     "mail": {"outcome": "posted", "after_s": 3600},
     "understands": ["ko"]}

Missing sections take the defaults below. An address nobody owns gets
`UNKNOWN` (resident None): the SMS is delivered, the call is answered by a
person who listens and presses nothing, the push is accepted and never
acknowledged, the letter is posted.

A resident only replies to an SMS or presses a key when the message is in a
language they understand (`understands` empty means any language).
An SMS `error_code` of 21614 means a landline Twilio knows about: the API
refuses the message at once instead of reporting it undelivered later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import orjson

DEFAULTS: dict[str, dict[str, Any]] = {
    "sms": {"outcome": "delivered", "error_code": None, "delay_s": 1.0, "reply": None, "reply_after_s": 20.0},
    "voice": {"answer": "human", "ring_s": 3.0, "press": [], "after_s": 0.0},
    "push": {"token_state": "valid", "ack": False, "ack_after_s": 15.0},
    "mail": {"outcome": "posted", "after_s": 3600.0},
}
_ADDRESS_FIELDS = ("phones", "fcm_tokens", "webpush_endpoints", "postal")

SMS_OUTCOMES = frozenset({"delivered", "undelivered", "failed"})
VOICE_ANSWERS = frozenset({"human", "machine", "busy", "no-answer", "failed"})


def complete(raw: dict[str, Any]) -> dict[str, Any]:
    """A resident record with every section and field present."""
    if not raw.get("resident"):
        raise ValueError("a behaviour record needs a 'resident' id")
    record = {**raw, "understands": list(raw.get("understands") or [])}
    for name in _ADDRESS_FIELDS:
        record[name] = list(raw.get(name) or [])
    for section, defaults in DEFAULTS.items():
        record[section] = {**defaults, **(raw.get(section) or {})}
    if record["sms"]["outcome"] not in SMS_OUTCOMES:
        raise ValueError(f"{raw['resident']}: sms.outcome must be one of {sorted(SMS_OUTCOMES)}")
    if record["voice"]["answer"] not in VOICE_ANSWERS:
        raise ValueError(f"{raw['resident']}: voice.answer must be one of {sorted(VOICE_ANSWERS)}")
    return record


UNKNOWN: dict[str, Any] = {**complete({"resident": "?"}), "resident": None}


def postal_key(postcode: str, first_line: str) -> str:
    return f"{postcode.strip()}|{first_line.strip()}"


class Behaviour:
    def __init__(self, records: Iterable[dict[str, Any]] = ()) -> None:
        self._residents: dict[str, dict[str, Any]] = {}
        # One index per kind of address, each mapping the address to its record.
        self._index: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in _ADDRESS_FIELDS}
        self.add_many(records)

    @classmethod
    def load(cls, path: str | Path) -> "Behaviour":
        with open(path, "rb") as f:
            return cls(orjson.loads(line) for line in f if line.strip())

    def add(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Adds a resident, or replaces the one with the same id (and its addresses)."""
        return self._put(complete(raw))

    def add_many(self, records: Iterable[dict[str, Any]]) -> int:
        """Adds residents; all are checked first, so a bad one leaves the city as it was."""
        checked = [complete(raw) for raw in records]
        for record in checked:
            self._put(record)
        return len(checked)

    def _put(self, record: dict[str, Any]) -> dict[str, Any]:
        old = self._residents.get(record["resident"])
        if old is not None:
            for name in _ADDRESS_FIELDS:
                for address in old[name]:
                    if self._index[name].get(address) is old:
                        del self._index[name][address]
        self._residents[record["resident"]] = record
        for name in _ADDRESS_FIELDS:
            for address in record[name]:
                self._index[name][address] = record
        return record

    def by_resident(self, resident: str) -> dict[str, Any] | None:
        return self._residents.get(resident)

    def by_phone(self, e164: str) -> dict[str, Any]:
        return self._index["phones"].get(e164, UNKNOWN)

    def by_fcm(self, token: str) -> dict[str, Any]:
        return self._index["fcm_tokens"].get(token, UNKNOWN)

    def by_endpoint(self, url: str) -> dict[str, Any]:
        return self._index["webpush_endpoints"].get(url, UNKNOWN)

    def by_postal(self, postcode: str, first_line: str) -> dict[str, Any]:
        return self._index["postal"].get(postal_key(postcode, first_line), UNKNOWN)

    def __len__(self) -> int:
        return len(self._residents)

    def clear(self) -> None:
        self._residents.clear()
        for index in self._index.values():
            index.clear()


# Scripts that name their language unambiguously; Latin script names none.
_SCRIPTS = (
    (0xAC00, 0xD7A3, "ko"), (0x1100, 0x11FF, "ko"), (0x3130, 0x318F, "ko"),
    (0x3040, 0x30FF, "ja"), (0x4E00, 0x9FFF, "zh"), (0x0400, 0x04FF, "ru"),
    (0x0600, 0x06FF, "ar"), (0x0E00, 0x0E7F, "th"), (0x0900, 0x097F, "hi"),
)


def language_of(text: str) -> str | None:
    """The language an SMS is in, as far as its script tells (kana wins over kanji)."""
    found = None
    for ch in text:
        code = ord(ch)
        if code < 0x0400:
            continue
        for low, high, lang in _SCRIPTS:
            if low <= code <= high:
                if lang != "zh":
                    return lang
                found = "zh"
                break
    return found


def understands(record: dict[str, Any], language: str | None) -> bool:
    """Whether the resident understands a message in `language` (BCP 47, e.g. ko-KR)."""
    if not language or not record["understands"]:
        return True
    return language.split("-")[0].lower() in record["understands"]
