"""The virtual city: residents the gateway accepts, behaviour the simulator can play."""

from __future__ import annotations

import base64
from collections import Counter
from types import SimpleNamespace

import orjson
import phonenumbers
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jsonschema import Draft202012Validator

from gateway.schemas import RESIDENT
from simulator.behaviour import Behaviour, complete, understands
from simulator.city import YEAR, generate

BASE_URL = "http://127.0.0.1:8900"
BEHAVIOUR_FIELDS = {"resident", "phones", "fcm_tokens", "webpush_endpoints", "postal",
                    "sms", "voice", "push", "mail", "understands"}


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    progress: list[tuple[int, int]] = []
    files = generate(4000, seed=7, out_dir=tmp_path_factory.mktemp("city"), sim_base_url=BASE_URL,
                     on_progress=lambda done, total: progress.append((done, total)))
    return SimpleNamespace(files=files, residents=_lines(files.residents), behaviour=_lines(files.behaviour),
                           progress=progress)


def _contacts(resident: dict, kind: str) -> list[dict]:
    return [c for c in resident["contacts"] if c["type"] == kind]


def _handset(resident: dict) -> str | None:
    phones = _contacts(resident, "phone")
    return phones[0]["handset"] if phones else None


def test_every_resident_passes_the_gateway_import_schema(city):
    validator = Draft202012Validator(RESIDENT, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert len(city.residents) == city.files.count == 4000
    for resident in city.residents:
        validator.validate(resident)


def test_phone_numbers_are_unique_valid_korean_numbers_of_the_right_kind(city):
    numbers = [(c["number"], c["handset"]) for r in city.residents for c in _contacts(r, "phone")]
    assert len({n for n, _ in numbers}) == len(numbers)
    for number, handset in numbers:
        parsed = phonenumbers.parse(number)
        assert phonenumbers.is_valid_number(parsed) and phonenumbers.region_code_for_number(parsed) == "KR"
        kinds = phonenumbers.PhoneNumberType
        assert phonenumbers.number_type(parsed) == (kinds.FIXED_LINE if handset == "landline" else kinds.MOBILE)


def test_behaviour_lines_follow_residents_and_index_their_addresses(city):
    assert len(city.behaviour) == len(city.residents)
    for resident, acts in zip(city.residents, city.behaviour):
        assert acts["resident"] == resident["id"]
        assert set(acts) - {"webpush_keys"} == BEHAVIOUR_FIELDS
        assert acts["phones"] == [c["number"] for c in _contacts(resident, "phone")]
        assert acts["fcm_tokens"] == [c["token"] for c in _contacts(resident, "fcm")]
        assert acts["webpush_endpoints"] == [c["endpoint"] for c in _contacts(resident, "webpush")]
        assert acts["postal"] == [f"{c['postcode']}|{c['lines'][0]}" for c in _contacts(resident, "postal")]
    # The simulator's own reader takes every line, and every postal address leads to one resident.
    behaviour = Behaviour.load(city.files.behaviour)
    assert len(behaviour) == len(city.residents)
    for resident in city.residents:
        for postal in _contacts(resident, "postal"):
            assert behaviour.by_postal(postal["postcode"], postal["lines"][0])["resident"] == resident["id"]


def test_web_push_subscriptions_have_real_p256_keys_the_simulator_holds(city):
    subscriptions = [(c, acts) for r, acts in zip(city.residents, city.behaviour) for c in _contacts(r, "webpush")]
    assert subscriptions
    for contact, acts in subscriptions:
        assert contact["endpoint"].startswith(f"{BASE_URL}/wp/")
        keys = acts["webpush_keys"][contact["endpoint"]]
        private = ec.derive_private_key(int.from_bytes(_unb64(keys["private_key"]), "big"), ec.SECP256R1())
        public = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        assert _unb64(contact["keys"]["p256dh"]) == public and len(public) == 65
        assert keys["auth"] == contact["keys"]["auth"] and len(_unb64(keys["auth"])) == 16


def test_smartphone_ownership_falls_with_age(city):
    owners, people = Counter(), Counter()
    for resident in city.residents:
        band = min((YEAR - resident["birth_year"]) // 10, 8)
        people[band] += 1
        owners[band] += _handset(resident) == "smartphone"
    share = {band: owners[band] / people[band] for band in people}
    assert share[3] > 0.95 and share[6] > share[7] > share[8]
    assert share[8] < 0.7


def test_a_feature_phone_or_landline_resident_has_no_push_address(city):
    for resident in city.residents:
        if _handset(resident) != "smartphone":
            assert not _contacts(resident, "fcm") and not _contacts(resident, "webpush")


def test_a_landline_cannot_take_an_sms(city):
    for resident, acts in zip(city.residents, city.behaviour):
        if _handset(resident) == "landline":
            assert acts["sms"]["outcome"] == "undelivered" and acts["sms"]["error_code"] == 21614


def test_a_deaf_resident_never_answers_and_a_blind_one_never_taps_a_push(city):
    deaf = [a for r, a in zip(city.residents, city.behaviour) if "deaf" in r["needs"]]
    blind = [a for r, a in zip(city.residents, city.behaviour) if "blind" in r["needs"]]
    assert deaf and blind
    assert all(a["voice"]["answer"] in ("no-answer", "failed") and a["voice"]["press"] == [] for a in deaf)
    assert all(a["push"]["ack"] is False for a in blind)


def test_the_city_has_the_people_who_are_hard_to_reach(city):
    needs = Counter(n for r in city.residents for n in r["needs"])
    assert {"elderly", "lives_alone", "low_vision", "large_print", "low_literacy"} <= set(needs)
    assert any(not r["contacts"] for r in city.residents)
    assert any(_handset(r) == "feature_phone" for r in city.residents)
    assert any(_handset(r) == "landline" for r in city.residents)
    assert any(r["languages"][0] != "ko" for r in city.residents)
    assert any(a["push"]["token_state"] == "stale" for a in city.behaviour)
    assert any(a["sms"]["error_code"] == 30005 for a in city.behaviour)
    assert any(a["mail"]["outcome"] == "returned" for a in city.behaviour)


def test_a_resident_understands_messages_in_the_languages_they_registered(city):
    for resident, acts in zip(city.residents, city.behaviour):
        record = complete(acts)
        if resident["languages"] != ["ko"] or acts["understands"] == ["ko"]:
            assert all(understands(record, language) for language in resident["languages"])
    # Bad registry data: someone registered as Korean-speaking who reads no Korean.
    assert any(r["languages"] == ["ko"] and "ko" not in a["understands"]
               for r, a in zip(city.residents, city.behaviour))


def test_the_same_seed_gives_the_same_city(tmp_path):
    first = generate(300, seed=11, out_dir=tmp_path / "a")
    again = generate(300, seed=11, out_dir=tmp_path / "b")
    other = generate(300, seed=12, out_dir=tmp_path / "c")
    assert first.residents.read_bytes() == again.residents.read_bytes()
    assert first.behaviour.read_bytes() == again.behaviour.read_bytes()
    assert first.residents.read_bytes() != other.residents.read_bytes()


def test_progress_is_reported_up_to_the_total(city):
    assert city.progress[-1] == (4000, 4000)
    assert [done for done, _ in city.progress] == sorted(done for done, _ in city.progress)
