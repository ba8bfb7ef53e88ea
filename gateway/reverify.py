"""Re-verification: "is this still your number? answer 1" to residents whose
phone numbers went stale (gateway/contact_ages.py).

A campaign is an alert of its own, `purpose: reverify`, so it runs, shows and
reports like any alert:
- Minor severity: low priority, it waits for a resident's quiet hours and goes
  only to residents who accept non-emergency messages;
- its plan holds only their stale numbers (fallback.Policy.stale_only): a text,
  then a call;
- it asks for acknowledgement, so the one key a resident answers with (reply
  1, press 1) confirms the delivery, and any confirmation makes the number
  fresh again.  A number nobody answers stays stale; one that fails is dead.
The words are in templates/notices/<lang>.json, in every language there.
"""

from __future__ import annotations

import orjson

from channels.notices import languages, words_for

from . import contact_ages, keys
from .alerts import Alerts
from .fallback import turn_of
from .registry import every_resident_id
from .transitions import text

EVENT = "Contact check"
CHANNELS = ["sms", "voice"]
CHUNK = 2000


def campaign(residents: list[str]) -> dict:
    """The alert document of a campaign to these residents; Korean first, the fallback."""
    langs = ["ko"] + [lang for lang in languages() if lang != "ko"]
    content = {lang: {"headline": words_for(lang)["reverify_headline"], "body": words_for(lang)["reverify_body"]}
               for lang in langs}
    return {"event": EVENT, "purpose": "reverify", "severity": "Minor", "urgency": "Future", "certainty": "Unknown",
            "content": content, "audience": {"residents": residents},
            "policy": {"channels": CHANNELS, "confirmation": "acknowledged"}}


async def stale_phones(redis, stale_days: float, districts: frozenset[str] = frozenset()) -> list[str]:
    """Residents (in `districts`, or anywhere) with a stale number that is not known dead."""
    if districts:
        rids = sorted({text(r) for d in districts for r in await redis.smembers(keys.district(d))})
    else:
        rids = await every_resident_id(redis)
    out = []
    for i in range(0, len(rids), CHUNK):
        pipe = redis.pipeline(transaction=False)
        for rid in rids[i:i + CHUNK]:
            pipe.hmget(keys.resident(rid), "p", "x", "lc")
        for rid, (p, x, lc) in zip(rids[i:i + CHUNK], await pipe.execute()):
            if p is None:
                continue
            kinds = [kind for kind, _ in orjson.loads(p)["k"]]
            dead = {int(n) for n in (x or b"").split(b",") if n}
            if any(kinds[n] == "phone" and n not in dead for n in contact_ages.stale(lc, stale_days) if n < len(kinds)):
                out.append(rid)
    return out


class OutsideArea(ValueError):
    """Districts the agency may not reach."""


async def start(redis, dispatch, agency, stale_days: float, districts: frozenset[str] = frozenset()
                ) -> tuple[str | None, int]:
    """Start a campaign for the agency's stale numbers (in `districts`, within its own):
    (alert id, residents), or (None, 0) when nobody's number is stale."""
    outside = sorted(districts - agency.districts) if agency.districts else []
    if outside:
        raise OutsideArea(f"outside this agency's area: {', '.join(outside)}")
    within = districts or agency.districts
    rids = await stale_phones(redis, stale_days, within)
    if not rids:
        return None, 0
    doc = campaign(rids)
    aid, _ = await Alerts(redis).create(agency.id, doc, None, callbacks=agency.has_callback)
    dispatch.fan_out(aid, turn_of(doc))
    return aid, len(rids)
