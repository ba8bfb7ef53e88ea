"""What key ids cost the fan-out: opening one resident's sealed contact data.

    .venv/bin/python bench/contact_open.py

Compares Vault.open on a value with a key id (the current format) with the
bare AES-GCM open of the format before key ids, in one process, interleaved.
"""

from __future__ import annotations

import os
import sys
import timeit
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.crypto import Vault  # noqa: E402

CONTACT = {"name": "김영희", "contacts": [
    {"type": "phone", "number": "+821055501234", "handset": "smartphone"},
    {"type": "postal", "lines": ["세종대로 209, 101동 1203호", "서울특별시 종로구"], "postcode": "03151"}]}


def main(n: int = 100_000, rounds: int = 7) -> None:
    key = os.urandom(32)
    vault = Vault(key, os.urandom(32), (os.urandom(32),))
    sealed = vault.seal(CONTACT, bound_to="r000001")
    aead, nonce = AESGCM(key), os.urandom(12)
    before = nonce + aead.encrypt(nonce, orjson.dumps(CONTACT), b"r000001")

    def bare():
        return orjson.loads(aead.decrypt(before[:12], before[12:], b"r000001"))

    def with_key_id():
        return vault.open(sealed, bound_to="r000001")

    best = {"before key ids (bare AES-GCM)": [], "Vault.open with key id": []}
    for _ in range(rounds):
        best["before key ids (bare AES-GCM)"].append(timeit.timeit(bare, number=n) / n * 1e6)
        best["Vault.open with key id"].append(timeit.timeit(with_key_id, number=n) / n * 1e6)
    for name, times in best.items():
        print(f"{name}: {min(times):.2f} us a resident (best of {rounds} x {n})")


if __name__ == "__main__":
    main()
