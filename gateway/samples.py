"""Sample alerts and residents, one copy: the demo sends them and the tests
build their stories from them.

`heat_wave` is the alert of the README's demo in the languages asked for;
`flood` a short Korean one; `resident` and `phone` a registry entry as
`PUT /v1/residents` takes it. Keyword arguments replace or add top-level
fields, so a test says only what its story needs.
"""

from __future__ import annotations

from collections.abc import Sequence

HEAT_WAVE_TEXT = {
    "ko": {"headline": "폭염 경보", "body": "오늘 낮 최고기온이 38도까지 오릅니다. 한낮 야외 활동을 피하세요.",
           "instruction": "물을 자주 드시고 가까운 무더위 쉼터를 이용하세요."},
    "en": {"headline": "Heat wave warning", "body": "Temperatures reach 38C today. Avoid outdoor activity at midday.",
           "instruction": "Drink water often and use the nearest cooling centre."},
    "zh-CN": {"headline": "高温警报", "body": "今天最高气温将达38度。中午请避免户外活动。",
              "instruction": "请多喝水，使用附近的避暑中心。"},
    "vi": {"headline": "Cảnh báo nắng nóng", "body": "Nhiệt độ hôm nay lên tới 38 độ. Tránh ra ngoài vào buổi trưa.",
           "instruction": "Uống nhiều nước và đến trung tâm tránh nóng gần nhất."},
}
DISTRICT = "11110"  # Jongno-gu, Seoul: where the sample residents live


def heat_wave(audience: dict | None = None, *, languages: Sequence[str] = ("ko", "en"), **fields) -> dict:
    """A Severe heat-wave warning; without `audience` the alert has none (as a preview takes it)."""
    alert = {"event": "Heat wave", "severity": "Severe", "urgency": "Expected",
             "content": {lang: dict(HEAT_WAVE_TEXT[lang]) for lang in languages}}
    if audience is not None:
        alert["audience"] = audience
    return alert | fields


def flood(audience: dict, **fields) -> dict:
    """A Severe, immediate flood warning in Korean."""
    return {"event": "Flood", "severity": "Severe", "urgency": "Immediate",
            "content": {"ko": {"headline": "홍수 경보", "body": "저지대 주민은 즉시 대피하십시오."}},
            "audience": audience} | fields


def resident(rid: str, *contacts: dict, name: str | None = None, needs: Sequence[str] = (),
             languages: Sequence[str] = ("ko",), district: str = DISTRICT, birth_year: int | None = None) -> dict:
    doc = {"id": rid, "name": name or f"Resident {rid}", "languages": list(languages), "district": district,
           "contacts": list(contacts)}
    if needs:
        doc["needs"] = list(needs)
    if birth_year:
        doc["birth_year"] = birth_year
    return doc


def phone(number: str, handset: str = "feature_phone") -> dict:
    return {"type": "phone", "number": number, "handset": handset}
