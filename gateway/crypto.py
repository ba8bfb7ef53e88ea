"""Contact points at rest: AES-GCM sealed, found again through a keyed hash.

A sealed value is `01 | key id (4) | nonce (12) | ciphertext and tag`.  The
key id is a hash of the key, so the vault knows which of its keys opens a
value without anyone naming keys.  Values sealed before key ids (`nonce |
ciphertext`) still open with whichever configured key sealed them.  New
values use the current key; `gateway keys reseal` moves old ones onto it.
"""

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


SEALED_V1 = b"\x01"
_ID_LEN, _NONCE_LEN = 4, 12
_HEAD = 1 + _ID_LEN


def key_id(key: bytes) -> bytes:
    """A key's id, stored with every value it seals: a hash that says nothing about the key."""
    return hashlib.sha256(b"gateway contact key id\x00" + key).digest()[:_ID_LEN]


class Vault:
    def __init__(self, contact_key: bytes, lookup_key: bytes, old_contact_keys: tuple[bytes, ...] = ()):
        keys = (contact_key, *old_contact_keys)
        self.current_key_id = key_id(contact_key)
        self._prefix = SEALED_V1 + self.current_key_id
        self._aead = AESGCM(contact_key)
        self._by_id = {key_id(k): AESGCM(k) for k in reversed(keys)}  # the current key wins a clash
        self._lookup_key = lookup_key
        # Links already sent keep opening after a rotation; new ones use the current key.
        self._links = [AESSIV(HKDF(hashes.SHA256(), 64, salt=None, info=b"resident page links").derive(k))
                       for k in keys]

    @classmethod
    def of(cls, settings) -> "Vault":
        return cls(settings.contact_key, settings.lookup_key, settings.contact_keys_old)

    def seal(self, value, *, bound_to: str) -> bytes:
        """Encrypt a JSON value; `bound_to` (the resident id) is authenticated
        so a sealed blob cannot be copied onto another resident."""
        return self.seal_bytes(orjson.dumps(value), bound_to=bound_to)

    def open(self, blob: bytes, *, bound_to: str):
        return orjson.loads(self.open_bytes(blob, bound_to=bound_to))

    def seal_bytes(self, data: bytes, *, bound_to: str) -> bytes:
        nonce = os.urandom(_NONCE_LEN)
        return self._prefix + nonce + self._aead.encrypt(nonce, data, bound_to.encode())

    def open_bytes(self, blob: bytes, *, bound_to: str) -> bytes:
        """Raises InvalidTag for a value none of the configured keys sealed (or one tampered with)."""
        aad = bound_to.encode()
        aead = self._by_id.get(blob[1:_HEAD]) if blob[:1] == SEALED_V1 else None
        if aead is not None:
            try:
                return aead.decrypt(blob[_HEAD:_HEAD + _NONCE_LEN], blob[_HEAD + _NONCE_LEN:], aad)
            except InvalidTag:
                pass  # an old value whose random nonce happens to begin like a key id
        for aead in self._by_id.values():  # sealed before key ids: the nonce comes first
            try:
                return aead.decrypt(blob[:_NONCE_LEN], blob[_NONCE_LEN:], aad)
            except InvalidTag:
                continue
        raise InvalidTag()

    def is_current(self, blob: bytes) -> bool:
        """Sealed with the current key (`gateway keys reseal` leaves it alone)."""
        return blob.startswith(self._prefix)

    def link_token(self, aid: str, rid: str) -> str:
        """The token in a resident's page link: the resident id sealed and bound
        to the alert, so it stores nothing, says nothing, and opens nothing else."""
        return self._link_token(self._links[0], aid, rid)

    @staticmethod
    def _link_token(siv: AESSIV, aid: str, rid: str) -> str:
        sealed = siv.encrypt(rid.encode(), [aid.encode()])
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def resident_of(self, aid: str, token: str) -> str | None:
        """The resident a link token names, or None for a forged or foreign one."""
        try:
            sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            return None
        for siv in self._links:
            try:
                rid = siv.decrypt(sealed, [aid.encode()]).decode()
            except (InvalidTag, ValueError, UnicodeDecodeError):
                continue
            # Base64 ignores the last character's spare bits: only the one spelling we issue opens.
            return rid if self._link_token(siv, aid, rid) == token else None
        return None

    def lookup_hash(self, value: str) -> str:
        return hmac.new(self._lookup_key, value.encode(), hashlib.sha256).hexdigest()[:32]

