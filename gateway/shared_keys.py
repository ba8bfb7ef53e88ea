"""Every process of one gateway holds the same keys, on whichever host it runs.

A key left unset is made once in the host's own data folder (config._key):
right for one machine, wrong for a second one, whose workers could open no
contact point the API had sealed and would sign Web Push with a key the push
services do not know. So the first process records a fingerprint of each key
in Redis, and a process holding another key refuses to start, naming it.
"""

from __future__ import annotations

import hashlib
import hmac

from . import keys
from .config import Settings

# Settings attribute -> the variable that sets it.
VARIABLES = {
    "contact_key": "GATEWAY_CONTACT_KEY",
    "lookup_key": "GATEWAY_LOOKUP_KEY",
    "vapid_private_key": "GATEWAY_VAPID_PRIVATE_KEY",
}


class KeyMismatch(RuntimeError):
    pass


def fingerprint(key: bytes) -> str:
    """Names the key without giving it away (an HMAC under the key itself)."""
    return hmac.new(key, b"gateway key fingerprint", hashlib.sha256).hexdigest()[:32]


async def check(redis, settings: Settings) -> None:
    """Record this process's key fingerprints where none are yet, then compare;
    raises KeyMismatch naming every variable that differs."""
    mine = {attr: fingerprint(getattr(settings, attr)) for attr in VARIABLES}
    pipe = redis.pipeline(transaction=True)
    for attr, value in mine.items():
        pipe.hsetnx(keys.KEY_FINGERPRINTS, attr, value)
    pipe.hgetall(keys.KEY_FINGERPRINTS)
    *_, recorded = await pipe.execute()
    recorded = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in recorded.items()}
    wrong = [VARIABLES[attr] for attr, value in mine.items() if recorded.get(attr) != value]
    if wrong:
        raise KeyMismatch(
            f"{', '.join(wrong)}: this host's value differs from the one the gateway's other processes use. "
            "Give every host (api, workers, pump) the same value; an unset key is made per host, in its own data folder.")
