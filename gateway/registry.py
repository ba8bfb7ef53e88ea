"""The resident registry: validate, normalise, seal, index.

In Redis a resident is one hash:
  p  profile JSON the planner reads without decrypting
     {"l": languages, "n": needs, "d": district, "k": [[type, handset], ...],
      "ne": non-emergency consent, "dr": drills, "by": birth year, "loc": [lat, lon], "qh": quiet hours}
  c  AES-GCM sealed {"name", "contacts"} (gateway/crypto.py): only a send opens it
  h  keyed hashes of the phone numbers (to drop their lookups on replace)
  x  indexes of dead contact points, comma-separated
  lc when each contact point last confirmed a delivery, or was registered
     (gateway/contact_ages.py)
  rt the send the resident's next SMS reply answers (kept across a replace)
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

import orjson
import phonenumbers

from . import contact_ages, keys, transitions
from .crypto import Vault
from .fallback import Contact, Profile
from .problems import field_errors, invalid
from .schemas import RESIDENT

DEFAULT_REGION = "KR"
IMPORT_ERRORS_SHOWN = 100


def normalise(doc: Any, prefix: tuple = ()) -> tuple[dict | None, list[dict]]:
    """A checked resident with E.164 numbers, or the errors that stop it."""
    errors = field_errors(RESIDENT, doc, prefix)
    if errors:
        return None, errors
    out = dict(doc)
    contacts = []
    for i, cp in enumerate(doc.get("contacts", [])):
        cp = dict(cp)
        if cp["type"] == "phone":
            e164 = _e164(cp["number"])
            if e164 is None:
                ptr = "/" + "/".join(map(str, prefix + ("contacts", i, "number")))
                errors.append({"field": ptr, "detail": "not a valid phone number"})
            cp["number"] = e164
        contacts.append(cp)
    out["contacts"] = contacts
    return (None, errors) if errors else (out, [])


def _e164(number: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def encode(resident: dict, vault: Vault, preferred: list[str] = (), ages: bytes | None = None
           ) -> dict[str, bytes | str]:
    sealed = vault.seal(_private(resident), bound_to=resident["id"])
    return {"p": orjson.dumps(_profile(resident, preferred)), "c": sealed, "h": _phone_hashes(resident, vault), "x": "",
            "lc": contact_ages.carried_over(vault, resident.get("contacts", []), ages)}


def _private(resident: dict) -> dict:
    return {"name": resident.get("name", ""), "contacts": resident.get("contacts", [])}


def _phone_hashes(resident: dict, vault: Vault) -> str:
    return ",".join(vault.lookup_hash(cp["number"]) for cp in resident.get("contacts", []) if cp["type"] == "phone")


def _profile(resident: dict, preferred: list[str]) -> dict:
    consent = resident.get("consent", {})
    profile = {
        "l": resident["languages"],
        "n": resident.get("needs", []),
        "d": resident["district"],
        "k": [[cp["type"], cp.get("handset")] for cp in resident.get("contacts", [])],
        "ne": consent.get("non_emergency", True),
        "dr": consent.get("drills", False),
    }
    if preferred:
        profile["co"] = list(preferred)
    if "birth_year" in resident:
        profile["by"] = resident["birth_year"]
    if "location" in resident:
        profile["loc"] = [resident["location"]["lat"], resident["location"]["lon"]]
    if "quiet_hours" in resident:
        profile["qh"] = resident["quiet_hours"]
    return profile


def profile(fields: dict, stale_days: float | None = None) -> Profile:
    """The planner's view of a stored resident (no decryption); with
    `stale_days`, which contact points are stale (fields then holds b"lc")."""
    p = orjson.loads(fields[b"p"])
    dead = fields.get(b"x") or b""
    return Profile(
        stale=contact_ages.stale(fields.get(b"lc"), stale_days) if stale_days is not None else frozenset(),
        languages=tuple(p["l"]),
        contacts=tuple(Contact(t, h) for t, h in p["k"]),
        needs=frozenset(p["n"]),
        dead=frozenset(int(i) for i in dead.split(b",") if i),
        non_emergency=p["ne"],
        preferred=tuple(p.get("co") or ()),
    )


def decode(rid: str, fields: dict, vault: Vault) -> dict:
    """The resident as the agency gave it (contacts opened)."""
    p = orjson.loads(fields[b"p"])
    private = vault.open(fields[b"c"], bound_to=rid)
    out: dict[str, Any] = {"id": rid, "languages": p["l"], "district": p["d"]}
    if private["name"]:
        out["name"] = private["name"]
    out["contacts"] = private["contacts"]
    if p["n"]:
        out["needs"] = p["n"]
    out["consent"] = {"non_emergency": p["ne"], "drills": p["dr"]}
    if "by" in p:
        out["birth_year"] = p["by"]
    if "loc" in p:
        out["location"] = {"lat": p["loc"][0], "lon": p["loc"][1]}
    if "qh" in p:
        out["quiet_hours"] = p["qh"]
    dead = fields.get(b"x") or b""
    out["dead_contacts"] = [int(i) for i in dead.split(b",") if i]
    out["contacts_confirmed_at"] = [_iso(ms) for ms in contact_ages.ages_ms(fields.get(b"lc"))]
    return out


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Registry:
    redis: Any
    vault: Vault

    async def put_many(self, residents: list[dict]) -> None:
        """Create or replace; old district and phone indexes are dropped, and the
        resident's own choice of channel order (their /r/ page) is kept.  The
        indexes are written with one command each for the whole batch, not one
        per resident: at a million residents the replies were most of the import."""
        if residents:
            await self._write(residents, await self._old_indexes([r["id"] for r in residents]))

    async def _write(self, residents: list[dict], olds: dict[str, tuple]) -> None:
        stale_phones: list[str] = []
        left: dict[str, list[str]] = defaultdict(list)
        joined: dict[str, list[str]] = defaultdict(list)
        lookups: dict[str, str] = {}
        points: list = []
        unplaced: list[str] = []
        pipe = self.redis.pipeline(transaction=True)
        for resident in residents:
            rid = resident["id"]
            old_district, old_phones, preferred, ages = olds[rid]
            stale_phones += map(keys.phone_lookup, old_phones)
            if old_district:
                left[old_district].append(rid)
            fields = encode(resident, self.vault, preferred, ages)
            # Overwrites what the agency owns; the reply target (rt) stays.
            pipe.hset(keys.resident(rid), mapping=fields)
            joined[resident["district"]].append(rid)
            for digest in filter(None, str(fields["h"]).split(",")):
                lookups[keys.phone_lookup(digest)] = rid
            if "location" in resident:
                points += (resident["location"]["lon"], resident["location"]["lat"], rid)
            else:
                unplaced.append(rid)
            _changed(pipe, rid)
        # Old indexes go before new ones: a number passed from one resident to
        # another in the same batch ends up looking up its new owner.
        if stale_phones:
            pipe.delete(*stale_phones)
        for code, rids in left.items():
            pipe.srem(keys.district(code), *rids)
        for code, rids in joined.items():
            pipe.sadd(keys.district(code), *rids)
        if lookups:
            pipe.mset(lookups)
        pipe.zadd(keys.RESIDENTS, dict.fromkeys(olds, 0), nx=True)
        if points:
            pipe.geoadd(keys.RESIDENT_GEO, points)
        if unplaced:
            pipe.zrem(keys.RESIDENT_GEO, *unplaced)
        await pipe.execute()

    async def import_many(self, residents: list[dict]) -> Counter:
        """put_many for those that differ from what is stored, so a second run of
        the same file writes nothing; counts created, updated and unchanged."""
        pipe = self.redis.pipeline(transaction=False)
        for resident in residents:
            pipe.hmget(keys.resident(resident["id"]), "p", "c", "h", "x", "lc")
        counts, changed, olds = Counter(created=0, updated=0, unchanged=0), [], {}
        for resident, (p, c, h, x, lc) in zip(residents, await pipe.execute()):
            if p is None:
                counts["created"] += 1
            elif self._same(resident, p, c, h, x):
                counts["unchanged"] += 1
                continue
            else:
                counts["updated"] += 1
            changed.append(resident)
            olds[resident["id"]] = _old_index(p, h, lc)
        if changed:
            await self._write(changed, olds)
        return counts

    def _same(self, resident: dict, p: bytes, c: bytes, h: bytes | None, x: bytes | None) -> bool:
        """What put_many would write is what is stored (the sealed part compared opened:
        sealing again draws a new nonce). Dead contact marks count: a re-import clears them."""
        stored = orjson.loads(p)
        return (stored == _profile(resident, stored.get("co") or [])
                and (h or b"").decode() == _phone_hashes(resident, self.vault) and not x
                and self.vault.open(c, bound_to=resident["id"]) == _private(resident))

    async def _old_indexes(self, rids: list[str]
                           ) -> dict[str, tuple[str | None, list[str], list[str], bytes | None]]:
        """Each resident's old indexes as stored now (`_old_index`)."""
        pipe = self.redis.pipeline(transaction=False)
        for rid in rids:
            pipe.hmget(keys.resident(rid), "p", "h", "lc")
        return {rid: _old_index(*stored) for rid, stored in zip(rids, await pipe.execute())}

    async def homes(self, rids: list[str]) -> dict[str, tuple[str, dict | None] | None]:
        """(district, location or None) of each stored resident, None for an
        unknown id: where they live, to check an agency's area (no decryption)."""
        pipe = self.redis.pipeline(transaction=False)
        for rid in rids:
            pipe.hget(keys.resident(rid), "p")
        out = {}
        for rid, p in zip(rids, await pipe.execute()):
            profile = orjson.loads(p) if p else None
            loc = profile.get("loc") if profile else None
            out[rid] = (profile["d"], {"lat": loc[0], "lon": loc[1]} if loc else None) if profile else None
        return out

    async def get(self, rid: str) -> dict | None:
        fields = await self.redis.hgetall(keys.resident(rid))
        # A hash without a profile is what is left of an erased resident.
        return decode(rid, fields, self.vault) if b"p" in fields else None

    async def delete(self, rid: str) -> bool:
        """Erase the resident and every index that could lead back to them."""
        district, phones, _, _ = (await self._old_indexes([rid]))[rid]
        if district is None:
            return False
        pipe = self.redis.pipeline(transaction=True)
        for digest in phones:
            pipe.delete(keys.phone_lookup(digest))
        pipe.srem(keys.district(district), rid)
        pipe.delete(keys.resident(rid))
        pipe.zrem(keys.RESIDENTS, rid)
        pipe.zrem(keys.RESIDENT_GEO, rid)
        _changed(pipe, rid)
        await pipe.execute()
        return True

    async def by_phone(self, e164: str) -> str | None:
        rid = await self.redis.get(keys.phone_lookup(self.vault.lookup_hash(e164)))
        return rid.decode() if rid else None

    def remember_reply(self, pipe, rid: str, ref: str) -> None:
        """Queue: the resident's next SMS reply answers `ref`. Written only while
        the resident exists, so a late send never revives an erased resident."""
        transitions.remember_reply(pipe, rid, ref)

    async def set_non_emergency(self, rid: str, allowed: bool) -> None:
        """A resident's STOP or START: consent to non-emergency alerts."""
        await transitions.set_consent(self.redis, rid, allowed)
        await _changed(self.redis, rid)

    async def sealed_with_old_keys(self, rids: list[str]) -> list[tuple[str, bytes]]:
        """(resident id, sealed contact data) of those not yet under the current key."""
        pipe = self.redis.pipeline(transaction=False)
        for rid in rids:
            pipe.hget(keys.resident(rid), "c")
        return [(rid, c) for rid, c in zip(rids, await pipe.execute()) if c and not self.vault.is_current(c)]

    async def reseal(self, sealed: list[tuple[str, bytes]]) -> int:
        """Seal that contact data again with the current key; returns how many
        were swapped.  A swap lands only on the value that was read, so a
        resident replaced or erased meanwhile keeps what the agency wrote, and
        a run stopped halfway is finished by running it again."""
        pipe = self.redis.pipeline(transaction=False)
        for rid, c in sealed:
            fresh = self.vault.seal_bytes(self.vault.open_bytes(c, bound_to=rid), bound_to=rid)
            transitions.reseal(pipe, rid, c, fresh)
        return sum(await pipe.execute())

    async def mark_dead(self, rid: str, contact: int) -> None:
        """A contact point that cannot work again (stale token, bad number)."""
        if await transitions.dead_contact(self.redis, rid, contact):
            await _changed(self.redis, rid)


def _old_index(p: bytes | None, h: bytes | None, lc: bytes | None
               ) -> tuple[str | None, list[str], list[str], bytes | None]:
    """(district, phone digests, preferred channel order, contact ages) of a stored resident."""
    profile = orjson.loads(p) if p else {}
    return profile.get("d"), [d for d in (h or b"").decode().split(",") if d], profile.get("co") or [], lc


# In-process indexes (gateway/geo.py) follow this stream instead of rereading everyone.
CHANGES_KEPT = 200_000


def _changed(client, rid: str):
    return client.xadd(keys.RESIDENT_CHANGES, {"r": rid}, maxlen=CHANGES_KEPT, approximate=True)


# Bulk import ---------------------------------------------------------------

CSV_COLUMNS = [
    "id", "name", "languages", "district", "needs", "birth_year", "lat", "lon",
    "phone", "handset", "phone2", "handset2", "fcm_token", "address", "postcode",
]


def _csv_row(row: dict[str, str]) -> dict:
    """One CSV row to the JSON shape: lists are `;`-separated, address lines `|`."""
    doc: dict[str, Any] = {
        "id": row.get("id", ""),
        "languages": [x for x in (row.get("languages") or "").split(";") if x],
        "district": row.get("district", ""),
    }
    if row.get("name"):
        doc["name"] = row["name"]
    if row.get("needs"):
        doc["needs"] = [x for x in row["needs"].split(";") if x]
    if row.get("birth_year"):
        doc["birth_year"] = int(row["birth_year"]) if row["birth_year"].isdigit() else row["birth_year"]
    if row.get("lat") or row.get("lon"):
        doc["location"] = {"lat": _num(row.get("lat")), "lon": _num(row.get("lon"))}
    contacts = []
    for phone, handset in (("phone", "handset"), ("phone2", "handset2")):
        if row.get(phone):
            contacts.append({"type": "phone", "number": row[phone], "handset": row.get(handset) or "smartphone"})
    if row.get("fcm_token"):
        contacts.append({"type": "fcm", "token": row["fcm_token"]})
    if row.get("address"):
        contacts.append({"type": "postal", "lines": row["address"].split("|"), "postcode": row.get("postcode", "")})
    doc["contacts"] = contacts
    unknown = set(row) - set(CSV_COLUMNS)
    if unknown:
        doc["_unknown_columns"] = sorted(c for c in unknown if c)
    return doc


def _num(value: str | None):
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return value


def parse_import(data: bytes, fmt: str) -> Iterator[tuple[int, Any]]:
    """(line number, document or a ValueError) for each record of the file."""
    if fmt == "csv":
        try:
            decoded = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            # Spreadsheets often save in the locale's encoding (EUC-KR, CP1252): name the line to fix.
            yield data.count(b"\n", 0, e.start) + 1, ValueError(
                f"not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as CSV UTF-8")
            return
        # newline="": the csv module reads \r, \n and \r\n itself, inside quotes too.
        reader = csv.DictReader(io.StringIO(decoded, newline=""))
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:  # e.g. a NUL byte, or a field over the csv module's size limit
                yield reader.line_num, ValueError(f"not CSV: {e}")
                continue
            yield reader.line_num, _csv_row(row)
    for n, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            try:
                yield n, orjson.loads(line)
            except orjson.JSONDecodeError as e:
                yield n, ValueError(f"not JSON: {e}")


async def every_resident_id(redis, page: int = 5_000) -> list[str]:
    """Every resident id, in id order, a page at a time: one read of 100,000
    would hold Redis (and every alert being accepted) for tens of ms."""
    ids: list[str] = []
    start = "-"
    while True:
        chunk = [rid.decode() for rid in await redis.zrangebylex(keys.RESIDENTS, start, "+", start=0, num=page)]
        ids += chunk
        if len(chunk) < page:
            return ids
        start = "(" + chunk[-1]


def sort_import(records: Iterable[tuple[int, Any]], also: Callable[[dict], list[dict]] = lambda resident: []
                ) -> tuple[list[dict], list[dict]]:
    """The good residents of an import file, and each error of the bad lines as
    {"line", "field", "detail"}; `also` finds more in a well-formed resident (the
    agency's area). A line with any error is bad as a whole."""
    good, errors, seen = [], [], {}
    for line, doc in records:
        if isinstance(doc, ValueError):
            errors.append({"line": line, "field": "", "detail": str(doc)})
            continue
        line_errors = []
        if isinstance(doc, dict) and "_unknown_columns" in doc:
            line_errors += [{"line": line, "field": f"column {col}", "detail": "unknown column"}
                            for col in doc.pop("_unknown_columns")]
        resident, errs = normalise(doc)
        line_errors += [{"line": line, **e} for e in (errs if errs else also(resident))]
        if resident and resident["id"] in seen:
            line_errors.append({"line": line, "field": "/id", "detail": f"duplicate of line {seen[resident['id']]}"})
        if resident and not line_errors:
            seen[resident["id"]] = line
            good.append(resident)
        errors += line_errors
    return good, errors


def check_import(records: Iterable[tuple[int, Any]],
                 also: Callable[[dict], list[dict]] = lambda resident: []) -> list[dict]:
    """Every resident of an import file, or a 422 naming line and field of each error."""
    good, errors = sort_import(records, also)
    if errors:
        shown = [{"field": f"line {e['line']}: {e['field']}" if e["field"] else f"line {e['line']}",
                  "detail": e["detail"]} for e in errors[:IMPORT_ERRORS_SHOWN]]
        more = len(errors) - len(shown)
        raise invalid(shown, f"{len(errors)} errors; nothing was imported" + (f" ({more} not shown)" if more else ""))
    return good
