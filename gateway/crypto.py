"""Contact points at rest: AES-GCM sealed, found again through a keyed hash."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class Vault:
    def __init__(self, contact_key: bytes, lookup_key: bytes):
        self._aead = AESGCM(contact_key)
        self._lookup_key = lookup_key
        link_key = HKDF(hashes.SHA256(), 64, salt=None, info=b"resident page links").derive(contact_key)
        self._links = AESSIV(link_key)

    def seal(self, value, *, bound_to: str) -> bytes:
        """Encrypt a JSON value; `bound_to` (the resident id) is authenticated
        so a sealed blob cannot be copied onto another resident."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, orjson.dumps(value), bound_to.encode())

    def open(self, blob: bytes, *, bound_to: str):
        return orjson.loads(self._aead.decrypt(blob[:12], blob[12:], bound_to.encode()))

    def link_token(self, aid: str, rid: str) -> str:
        """The token in a resident's page link: the resident id sealed and bound
        to the alert, so it stores nothing, says nothing, and opens nothing else."""
        sealed = self._links.encrypt(rid.encode(), [aid.encode()])
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def resident_of(self, aid: str, token: str) -> str | None:
        """The resident a link token names, or None for a forged or foreign one."""
        try:
            sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            rid = self._links.decrypt(sealed, [aid.encode()]).decode()
        except (InvalidTag, ValueError, UnicodeDecodeError):
            return None
        # Base64 ignores the last character's spare bits: only the one spelling we issue opens.
        return rid if self.link_token(aid, rid) == token else None

    def lookup_hash(self, value: str) -> str:
        return hmac.new(self._lookup_key, value.encode(), hashlib.sha256).hexdigest()[:32]


def mask_phone(number: str) -> str:
    """+821012345678 -> +8210****5678, for logs and operator views."""
    if len(number) <= 6:
        return "*" * len(number)
    return number[:5] + "*" * (len(number) - 9) + number[-4:]
