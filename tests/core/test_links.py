"""Resident page links: opaque, bound to one alert, unforgeable, one spelling."""

import base64

from gateway.crypto import Vault

VAULT = Vault(bytes(range(32)), bytes(32))


def test_a_link_token_names_its_resident_and_says_nothing_readable():
    token = VAULT.link_token("al_1", "halmoni-7")
    assert VAULT.resident_of("al_1", token) == "halmoni-7"
    assert "halmoni" not in token and b"halmoni" not in base64.urlsafe_b64decode(token + "==")


def test_a_token_opens_nothing_under_another_alert():
    assert VAULT.resident_of("al_2", VAULT.link_token("al_1", "halmoni-7")) is None


def test_every_other_spelling_of_a_token_is_refused():
    token = VAULT.link_token("al_1", "halmoni-7")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i in (0, len(token) // 2, len(token) - 1):
        for c in alphabet:
            if c != token[i]:
                assert VAULT.resident_of("al_1", token[:i] + c + token[i + 1:]) is None
