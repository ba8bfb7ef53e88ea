"""A virtual Seoul-like city: who lives there, and how each resident behaves.

`generate()` writes three NDJSON files into a folder:

- `residents.ndjson`: the gateway's import format (`gateway.schemas.RESIDENT`);
- `behaviour.ndjson`: what the simulator makes each resident do when an SMS,
  a call, a push or a letter reaches them. Web Push subscriptions carry their
  private keys here (`webpush_keys`: endpoint -> {private_key, auth}) so that
  the simulator can decrypt what the gateway sends, as a browser would.

Every figure is SYNTHETIC, loosely shaped on public Korean statistics; the
default mix and where each number comes from is in `simulator/CITY.md`.
The same seed always gives the same city, byte for byte.
"""

from __future__ import annotations

import base64
import random
from bisect import bisect
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Callable, Sequence

import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# Birth years are counted from a fixed year, not today, so a seed means one city forever.
YEAR = 2025
FOREIGN_SHARE = 0.045
POSTAL_SHARE = 0.92
NO_CONTACT_SHARE = 0.004
STALE_TOKEN = 0.05
DEAD_NUMBER = 0.015
PHONE_OFF = 0.02
SMS_FAILED = 0.002
MAIL_RETURNED = 0.025
QUIET_HOURS = 0.08
# Order of the P-256 group: a private scalar is drawn below it.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass(frozen=True)
class District:
    code: str
    name: str
    lat: tuple[float, float]
    lon: tuple[float, float]
    postcodes: tuple[int, int]
    roads: tuple[str, ...]


# Real Seoul gu codes, rough bounding boxes, and each gu's 5-digit postcode range.
SEOUL = (
    District("11110", "종로구", (37.570, 37.600), (126.960, 127.010), (3000, 3199),
             ("세종대로", "율곡로", "종로", "대학로", "자하문로", "창경궁로")),
    District("11140", "중구", (37.555, 37.570), (126.970, 127.020), (4500, 4699),
             ("을지로", "퇴계로", "다산로", "명동길", "청계천로", "동호로")),
    District("11170", "용산구", (37.520, 37.555), (126.960, 127.010), (4300, 4449),
             ("한강대로", "이태원로", "녹사평대로", "원효로", "서빙고로", "보광로")),
    District("11440", "마포구", (37.545, 37.580), (126.890, 126.955), (3900, 4199),
             ("월드컵로", "양화로", "마포대로", "성미산로", "독막로", "와우산로")),
    District("11350", "노원구", (37.620, 37.680), (127.050, 127.100), (1600, 1899),
             ("동일로", "노원로", "한글비석로", "상계로", "공릉로", "덕릉로")),
    District("11680", "강남구", (37.480, 37.530), (127.020, 127.090), (6000, 6399),
             ("테헤란로", "강남대로", "도산대로", "언주로", "선릉로", "압구정로")),
)


@dataclass(frozen=True)
class AgeBand:
    """Everything in the mix that depends on age, one row per band."""

    low: int
    high: int
    korean: float  # share of Korean residents aged 10+
    foreign: float  # share of foreign residents aged 10+
    smartphone: float
    feature_phone: float
    landline_only: float  # the rest of the band has no phone at all
    app: float  # smartphone owners with the city app (FCM)
    webpush: float  # smartphone owners subscribed on the web instead
    blind: float
    low_vision: float
    deaf: float
    low_literacy: float
    answers: tuple[float, float, float, float]  # human, machine, busy, no-answer
    replies: float  # answers an SMS that asks for a reply
    acks: float  # taps the acknowledgement in the app


BANDS = (
    AgeBand(10, 19, 9.2, 3, 0.96, 0.03, 0.0, 0.55, 0.15, 0.0005, 0.002, 0.001, 0.005, (40, 35, 5, 20), 0.45, 0.55),
    AgeBand(20, 29, 12.1, 30, 0.995, 0.004, 0.0, 0.60, 0.15, 0.0005, 0.002, 0.001, 0.005, (40, 35, 5, 20), 0.45, 0.55),
    AgeBand(30, 39, 12.9, 30, 0.995, 0.004, 0.0, 0.60, 0.15, 0.0005, 0.002, 0.001, 0.005, (50, 30, 5, 15), 0.55, 0.55),
    AgeBand(40, 49, 15.4, 17, 0.99, 0.008, 0.001, 0.60, 0.15, 0.001, 0.005, 0.002, 0.015, (50, 30, 5, 15), 0.55, 0.55),
    AgeBand(50, 59, 16.8, 12, 0.985, 0.012, 0.002, 0.55, 0.15, 0.001, 0.005, 0.002, 0.015, (55, 25, 5, 15), 0.55, 0.50),
    AgeBand(60, 69, 14.6, 6, 0.962, 0.03, 0.006, 0.45, 0.10, 0.003, 0.02, 0.006, 0.05, (65, 15, 5, 15), 0.45, 0.45),
    AgeBand(70, 79, 7.6, 1.5, 0.78, 0.17, 0.04, 0.30, 0.08, 0.006, 0.05, 0.015, 0.15, (75, 5, 5, 15), 0.30, 0.35),
    AgeBand(80, 99, 4.6, 0.5, 0.48, 0.35, 0.14, 0.20, 0.05, 0.012, 0.12, 0.04, 0.30, (75, 5, 5, 15), 0.20, 0.30),
)


@dataclass(frozen=True)
class Origin:
    """A foreign residents' group: share, languages they prefer, passport names."""

    weight: float
    languages: tuple[str, ...]
    families: tuple[str, ...]
    givens: tuple[str, ...]
    speaks_korean: float = 0.3


# Registered nationalities, 2023 year-end (Korea Immigration Service), folded into 13 groups.
ORIGINS = (
    Origin(21.2, ("ko", "zh-CN"), ("JIN", "LI", "PIAO", "CUI", "ZHENG", "QUAN", "XU"),
           ("CHUNHUA", "YINGZI", "MINGZHE", "CHENGHU", "XIANGLAN", "ZHEHAO", "MEIHUA"), speaks_korean=0),
    Origin(16.4, ("zh-CN",), ("WANG", "LI", "ZHANG", "LIU", "CHEN", "YANG", "ZHAO", "HUANG"),
           ("WEI", "FANG", "NA", "XIUYING", "MIN", "JING", "LEI", "QIANG", "YAN")),
    Origin(10.8, ("vi",), ("NGUYEN", "TRAN", "LE", "PHAM", "HOANG", "HUYNH", "PHAN", "VU"),
           ("VAN AN", "THI LAN", "THI HUONG", "VAN MINH", "VAN HUNG", "THI LINH", "MINH TUAN", "THI THAO")),
    Origin(8.1, ("th",), ("SRISUK", "WONGSAWAT", "CHAIYAPORN", "SAETANG", "KAEWMANEE", "BOONMA"),
           ("SOMCHAI", "SOMSAK", "MALEE", "SIRIPORN", "NATTAPONG", "KANYA")),
    Origin(6.5, ("en",), ("SMITH", "JOHNSON", "WILLIAMS", "BROWN", "GARCIA", "MILLER", "KIM", "LEE"),
           ("JAMES", "MARY", "MICHAEL", "JENNIFER", "DAVID", "EMILY", "DANIEL", "SARAH")),
    Origin(3.5, ("uz", "ru"), ("KIM", "PAK", "TSOI", "TEN", "YUSUPOV", "KARIMOV", "RAHIMOV"),
           ("AKMAL", "DILSHOD", "SARDOR", "BOBUR", "JASUR", "SHERZOD")),
    Origin(2.5, ("fil", "en"), ("SANTOS", "REYES", "CRUZ", "BAUTISTA", "GARCIA", "MENDOZA"),
           ("MARIA", "JOSE", "ANGELICA", "MARK", "JOHN PAUL", "KRISTINE")),
    Origin(2.4, ("ja",), ("SATO", "SUZUKI", "TAKAHASHI", "TANAKA", "WATANABE", "ITO"),
           ("HARUTO", "YUI", "REN", "SAKURA", "HINATA", "YUKI")),
    Origin(2.3, ("ne", "en"), ("SHRESTHA", "GURUNG", "TAMANG", "RAI", "MAGAR", "THAPA"),
           ("RAM", "SITA", "BIKASH", "ANITA", "SUNIL", "SABITA")),
    Origin(2.2, ("id",), ("SETIAWAN", "SANTOSO", "LESTARI", "RAHAYU", "WAHYUDI", "HIDAYAT"),
           ("AGUS", "DEWI", "BUDI", "SITI", "RINA", "EKO")),
    Origin(2.1, ("mn",), ("GANBOLD", "BATBAYAR", "ENKHBAT", "DORJ", "BOLD", "TSEREN"),
           ("SARNAI", "OYUNCHIMEG", "BAT-ERDENE", "ENKHJARGAL", "TEMUULEN", "NOMIN")),
    Origin(2.0, ("ru",), ("KIM", "PAK", "LI", "TSOI", "SHIN", "HAN"),
           ("ALEXEI", "DMITRY", "OLGA", "NATALIA", "SERGEI", "IRINA")),
    Origin(2.0, ("km",), ("SOK", "CHAN", "KEO", "LIM", "PHAN", "MEAS"),
           ("DARA", "SOPHEA", "VICHEKA", "BOPHA", "RITHY", "CHANTHA")),
)

# Family names by share of the population (2015 census); given names from two syllables.
SURNAMES = dict(김=21.5, 이=14.7, 박=8.4, 최=4.7, 정=4.4, 강=2.3, 조=2.1, 윤=2.1, 장=2.0, 임=1.6,
                한=1.5, 오=1.5, 서=1.5, 신=1.5, 권=1.4, 황=1.4, 안=1.4, 송=1.3, 류=1.2, 전=1.1,
                홍=1.1, 고=0.9, 문=0.9, 양=0.9, 손=0.9, 배=0.8, 백=0.8, 허=0.6, 남=0.6, 노=0.6)
# (first syllables, second syllables) by (born before 1965, female).
GIVEN = {
    (True, False): ("영상정동병종성재광기", "수호철식길석환준남"),
    (True, True): ("영정순옥춘미경명말", "자숙희순례옥분남"),
    (False, False): ("민준서도시지현성우주건", "준호우민혁훈진현빈원"),
    (False, True): ("서지민수하예윤은채유", "연은아희영진린서윤원"),
}

CONFIRMS = {"ko": ("1", "1", "1", "네", "예"), "other": ("1", "1", "1", "yes")}
FREE_TEXT = {
    "ko": ("확인했습니다", "알겠어요", "무슨 일이에요?", "ㅇㅇ", "감사합니다"),
    "zh": ("好的", "收到", "发生了什么?"),
    "vi": ("cảm ơn", "vâng", "chuyện gì vậy?"),
    "ja": ("はい", "了解です"),
    "en": ("ok", "thanks", "got it", "what happened?"),
}


@dataclass(frozen=True)
class CityFiles:
    residents: Path
    behaviour: Path
    count: int


class _Draw:
    """The seeded random source, with the few shapes of choice the city needs."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.random = self.rng.random
        self._cum: dict[tuple[float, ...], list[float]] = {}

    def chance(self, p: float) -> bool:
        return self.random() < p

    def pick(self, items: Sequence):
        return items[int(self.random() * len(items))]

    def weighted(self, items: Sequence, weights: tuple[float, ...]):
        # Cumulative weights are cached per table: `choices` would rebuild them each call.
        cum = self._cum.get(weights)
        if cum is None:
            cum = self._cum[weights] = list(accumulate(weights))
        return items[bisect(cum, self.random() * cum[-1])]

    def lognormal(self, median: float, sigma: float) -> float:
        return round(median * self.rng.lognormvariate(0, sigma), 1)

    def token(self, n: int) -> str:
        return b64url(self.rng.randbytes(n))


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def generate(
    n: int,
    seed: int,
    out_dir: Path,
    *,
    districts: Sequence[District] = SEOUL,
    sim_base_url: str = "http://127.0.0.1:8900",
    on_progress: Callable[[int, int], None] | None = None,
) -> CityFiles:
    """Write a city of `n` residents into `out_dir`; the same seed gives the same files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    city = _City(_Draw(seed), districts, sim_base_url.rstrip("/"))
    width = max(6, len(str(n)))
    residents, behaviour = out_dir / "residents.ndjson", out_dir / "behaviour.ndjson"
    with residents.open("wb") as r_out, behaviour.open("wb") as b_out:
        for i in range(1, n + 1):
            resident, acts = city.person(f"r{i:0{width}d}")
            r_out.write(orjson.dumps(resident) + b"\n")
            b_out.write(orjson.dumps(acts) + b"\n")
            if on_progress and (i % 1000 == 0 or i == n):
                on_progress(i, n)
    return CityFiles(residents, behaviour, n)


class _City:
    def __init__(self, draw: _Draw, districts: Sequence[District], base_url: str):
        self.d = draw
        self.districts = districts
        self.base_url = base_url
        self.numbers: set[str] = set()
        self.addresses: set[tuple[str, str]] = set()
        self.surnames, self.surname_weights = tuple(SURNAMES), tuple(SURNAMES.values())
        self.korean_ages = tuple(b.korean for b in BANDS)
        self.foreign_ages = tuple(b.foreign for b in BANDS)
        self.origin_weights = tuple(o.weight for o in ORIGINS)

    def person(self, rid: str) -> tuple[dict, dict]:
        d = self.d
        foreign = d.chance(FOREIGN_SHARE)
        band = d.weighted(BANDS, self.foreign_ages if foreign else self.korean_ages)
        age = band.low + int(d.random() * (band.high - band.low + 1))
        if foreign:
            origin = d.weighted(ORIGINS, self.origin_weights)
            name = f"{d.pick(origin.families)} {d.pick(origin.givens)}"
            spoken = list(origin.languages)
            if d.chance(origin.speaks_korean):
                spoken.append("ko")
        else:
            female = d.chance(0.5)
            first, second = GIVEN[(YEAR - age < 1965, female)]
            name = d.weighted(self.surnames, self.surname_weights) + d.pick(first) + d.pick(second)
            spoken = ["ko", "en"] if age < 50 and d.chance(0.15) else ["ko"]
        # Bad data: a few foreign residents were registered as Korean speakers.
        languages = ["ko"] if foreign and spoken[0] != "ko" and d.chance(0.03) else spoken
        # The simulator matches languages by their primary subtag: zh-CN is read as zh.
        understands = [language.split("-")[0] for language in spoken]

        needs = self.needs(band, age)
        district = self.districts[int(d.random() * len(self.districts))]
        resident = {
            "id": rid,
            "name": name,
            "languages": languages,
            "contacts": [],
            "needs": needs,
            "district": district.code,
            "location": {"lat": round(d.rng.uniform(*district.lat), 5), "lon": round(d.rng.uniform(*district.lon), 5)},
            "birth_year": YEAR - age,
            "consent": {"non_emergency": d.chance(0.85), "drills": d.chance(0.7)},
        }
        if d.chance(QUIET_HOURS):
            resident["quiet_hours"] = {
                "start": d.pick(("21:00", "22:00", "23:00")),
                "end": d.pick(("06:00", "07:00", "08:00")),
                "tz": "Asia/Seoul",
            }
        acts = {"resident": rid, "phones": [], "fcm_tokens": [], "webpush_endpoints": [], "postal": []}
        handset = None if d.chance(NO_CONTACT_SHARE) else self.contacts(band, district, resident, acts)
        acts.update(self.behaviour(band, age, needs, handset, understands))
        return resident, acts

    def needs(self, band: AgeBand, age: int) -> list[str]:
        d = self.d
        needs = [need for need, p in (("blind", band.blind), ("low_vision", band.low_vision),
                                      ("deaf", band.deaf), ("low_literacy", band.low_literacy)) if d.chance(p)]
        if "low_vision" in needs or (age >= 80 and d.chance(0.1)) or (70 <= age < 80 and d.chance(0.03)):
            needs.append("large_print")
        if age >= 65:
            needs.append("elderly")
            # Statistics Korea: about one in five people aged 65+ lives alone.
            if d.chance(0.21):
                needs.append("lives_alone")
        return needs

    def contacts(self, band: AgeBand, district: District, resident: dict, acts: dict) -> str | None:
        """Fill the resident's contact points (and their index in `acts`); return the handset."""
        d, contacts = self.d, resident["contacts"]
        handset = d.weighted(("smartphone", "feature_phone", "landline", None),
                             (band.smartphone, band.feature_phone, band.landline_only,
                              max(0.0, 1 - band.smartphone - band.feature_phone - band.landline_only)))
        if handset == "smartphone":
            roll = d.random()
            if roll < band.app:
                token = f"{d.token(16)[:22]}:APA91b{d.token(101)[:134]}"
                contacts.append({"type": "fcm", "token": token})
                acts["fcm_tokens"].append(token)
            elif roll < band.app + band.webpush:
                contacts.append(self.webpush(acts))
        if handset:
            number = self.number(landline=handset == "landline")
            contacts.append({"type": "phone", "number": number, "handset": handset})
            acts["phones"].append(number)
        if d.chance(POSTAL_SHARE):
            postcode, line1 = self.address(district)
            contacts.append({"type": "postal", "lines": [line1, f"서울특별시 {district.name}"],
                             "postcode": postcode, "country": "KR"})
            acts["postal"].append(f"{postcode}|{line1}")
        return handset

    def webpush(self, acts: dict) -> dict:
        d = self.d
        endpoint = f"{self.base_url}/wp/{d.token(16)}"
        # Derived from the seed rather than `generate_private_key`, so the city stays reproducible.
        key = ec.derive_private_key(d.rng.randrange(1, P256_ORDER), ec.SECP256R1())
        p256dh = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        auth = d.rng.randbytes(16)
        acts["webpush_endpoints"].append(endpoint)
        acts.setdefault("webpush_keys", {})[endpoint] = {
            "private_key": b64url(key.private_numbers().private_value.to_bytes(32, "big")),
            "auth": b64url(auth),
        }
        return {"type": "webpush", "endpoint": endpoint, "keys": {"p256dh": b64url(p256dh), "auth": b64url(auth)}}

    def number(self, landline: bool) -> str:
        d = self.d
        while True:
            # libphonenumber rejects 010-597x..599x, so mobiles avoid 010-59xx altogether.
            subscriber = 20_000_000 + int(d.random() * 80_000_000)
            if not landline and subscriber // 1_000_000 == 59:
                continue
            number = f"+822{subscriber}" if landline else f"+8210{subscriber}"
            if number not in self.numbers:
                self.numbers.add(number)
                return number

    def address(self, district: District) -> tuple[str, str]:
        d = self.d
        while True:
            postcode = f"{d.rng.randint(*district.postcodes):05d}"
            line1 = f"{d.pick(district.roads)} {1 + int(d.random() * 400)}"
            if d.chance(0.6):  # most Seoul households live in apartment blocks
                line1 += f", {101 + int(d.random() * 15)}동 {1 + int(d.random() * 25)}{1 + int(d.random() * 8):02d}호"
            if (postcode, line1) not in self.addresses:
                self.addresses.add((postcode, line1))
                return postcode, line1

    def behaviour(self, band: AgeBand, age: int, needs: list[str], handset: str | None,
                  understands: list[str]) -> dict:
        d = self.d
        elderly = age >= 70
        dead = handset is not None and d.chance(DEAD_NUMBER)
        phone_off = not dead and d.chance(PHONE_OFF)

        if handset == "landline":
            # Twilio knows a Korean fixed line and refuses the SMS at once (21614).
            sms = {"outcome": "undelivered", "error_code": 21614}
        elif dead:
            sms = {"outcome": "undelivered", "error_code": 30005}
        elif phone_off:
            sms = {"outcome": "undelivered", "error_code": 30003}
        elif d.chance(SMS_FAILED):
            sms = {"outcome": "failed", "error_code": 30008}
        else:
            sms = {"outcome": "delivered", "error_code": None}
        sms["delay_s"] = d.lognormal(3.0, 0.5)
        replies = band.replies * (0.3 if "low_literacy" in needs else 1) * (0.5 if "blind" in needs else 1)
        sms["reply"] = self.reply(understands[0]) if sms["outcome"] == "delivered" and d.chance(replies) else None
        sms["reply_after_s"] = d.lognormal(120.0 if elderly else 40.0, 0.8) if sms["reply"] else None

        if dead:
            answer = "failed"
        elif "deaf" in needs or phone_off:
            answer = "no-answer"
        else:
            answer = d.weighted(("human", "machine", "busy", "no-answer"), band.answers)
        ring = {"human": d.lognormal(12.0 if elderly else 8.0, 0.4), "machine": 20.0 + int(d.random() * 6),
                "busy": 0.0, "no-answer": 60.0, "failed": 0.0}[answer]
        press: list[str] = []
        if answer == "human":
            press = list(d.weighted((["1"], ["9", "1"], ["2"], []), (45, 10, 3, 42) if elderly else (60, 8, 3, 29)))
        voice = {"answer": answer, "ring_s": ring, "press": press, "after_s": round(d.random() * 4, 1)}

        acks = 0.0 if "blind" in needs else band.acks * (0.5 if "low_literacy" in needs else 1)
        push = {"token_state": "stale" if d.chance(STALE_TOKEN) else "valid", "ack": d.chance(acks),
                "ack_after_s": d.lognormal(90.0 if elderly else 30.0, 0.8)}
        mail = {"outcome": "returned" if d.chance(MAIL_RETURNED) else "posted",
                "after_s": 1800 + int(d.random() * 5400)}
        return {"sms": sms, "voice": voice, "push": push, "mail": mail, "understands": understands}

    def reply(self, language: str) -> str:
        d, roll = self.d, self.d.random()
        if roll < 0.005:
            return "STOP"
        if roll < 0.12:
            return d.pick(FREE_TEXT.get(language, FREE_TEXT["en"]))
        return d.pick(CONFIRMS["ko" if language == "ko" else "other"])
