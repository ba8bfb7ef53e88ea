"""Every Redis key the gateway uses, in one place.

Keys of one alert share the hash tag `{a:<id>}` so that a transition script
touches one Cluster slot; resident keys are spread by resident id.
"""

from __future__ import annotations


# Residents
def resident(rid: str) -> str:
    return f"r:{rid}"


RESIDENTS = "residents"  # zset of every resident id, scored by insertion order


def district(code: str) -> str:
    return f"district:{code}"


def phone_lookup(digest: str) -> str:
    """Keyed hash of an E.164 number -> resident id (inbound SMS)."""
    return f"phone:{digest}"


# Agencies and auth
def agency(agency_id: str) -> str:
    return f"agency:{agency_id}"


def api_key(key_id: str) -> str:
    return f"apikey:{key_id}"


AGENCIES = "agencies"


def rate_window(agency_id: str, second: int) -> str:
    return f"rate:{agency_id}:{second}"


# Alerts
def alert(aid: str) -> str:
    return f"{{a:{aid}}}"


def alert_counts(aid: str) -> str:
    return f"{{a:{aid}}}:count"


def alert_bits(aid: str, state: str) -> str:
    """Bitmap of the sequence numbers of the alert's deliveries in `state`."""
    return f"{{a:{aid}}}:bits:{state}"


def alert_block(aid: str, block: int) -> str:
    """Hash: sequence number modulo 128 -> resident id, for one block of 128."""
    return f"{{a:{aid}}}:seq:{block}"


def alert_timers(aid: str) -> str:
    """zset of `resident|step|attempt|kind` scored by deadline (ms)."""
    return f"{{a:{aid}}}:timers"


def delivery(aid: str, rid: str) -> str:
    return f"{{a:{aid}}}:d:{rid}"


def agency_alerts(agency_id: str) -> str:
    return f"agency:{agency_id}:alerts"


def idempotency(agency_id: str, key: str) -> str:
    return f"idem:{agency_id}:{key}"


ACTIVE_ALERTS = "alerts:active"  # set of alert ids that may still have timers
ALERTS = "alerts"  # zset of every alert id by creation time


# Field of the resident hash: the send (alert/resident/step/attempt/leg) the
# resident's next SMS reply answers.
REPLY_TARGET = "rt"


def replies(aid: str) -> str:
    """Free-text replies kept for operators."""
    return f"{{a:{aid}}}:replies"


# Pump leadership
PUMP_LEADER = "pump:leader"

# hash: settings attribute -> fingerprint of the key every process must share (gateway/shared_keys.py)
KEY_FINGERPRINTS = "keys:fingerprints"


# Geography (gateway/geo.py)
RESIDENT_GEO = "residents:geo"  # GEO set of residents' home points
RESIDENT_CHANGES = "residents:changes"  # stream of changed resident ids, for in-process indexes
# A random value the resident index sets when missing: a wiped registry loses
# it, so the index knows to rebuild even if stream ids happen to repeat.
RESIDENT_EPOCH = "residents:epoch"


# CAP messages and the alert lifecycle (gateway/lifecycle.py)
def cap_index(agency_id: str) -> str:
    """hash `sender,identifier` -> `alert id|body digest` of every CAP message the agency posted."""
    return f"agency:{agency_id}:cap"


def alert_rounds(aid: str) -> str:
    """list of the update rounds (child alerts) of an alert, oldest first."""
    return f"{{a:{aid}}}:rounds"


# Agency callbacks (gateway/callbacks.py)
def alert_events(aid: str) -> str:
    """stream of terminal delivery states and progress summaries still to be sent to the agency."""
    return f"{{a:{aid}}}:events"


def alert_callback(aid: str) -> str:
    """hash: retry state of the alert's callback queue (attempts, next_ms, last_error)."""
    return f"{{a:{aid}}}:cb"


CALLBACK_ALERTS = "callbacks:alerts"  # set of alert ids with callback events still to send


def callback_dead(agency_id: str) -> str:
    """list of dead-lettered callback batches (JSON), newest first."""
    return f"agency:{agency_id}:cb:dead"


# The operator console (gateway/console/)
OPERATORS = "ops:operators"  # set of operator names
AUDIT = "ops:audit"  # stream of operator actions: who, action, target, detail


def operator(name: str) -> str:
    """hash: argon2 hash, role, created_ms, disabled."""
    return f"ops:op:{name}"


def session(sid: str) -> str:
    """hash: operator (absent before login), csrf; expires when idle."""
    return f"ops:s:{sid}"


def login_failures(name: str) -> str:
    return f"ops:fail:{name}"


def reach(scope: str) -> str:
    """The last reach report for `all` or one agency, JSON, kept for a minute."""
    return f"ops:reach:{scope}"


def welfare(aid: str) -> str:
    """hash: resident id -> JSON {by, at_ms, note} of a welfare visit done."""
    return f"{{a:{aid}}}:welfare"


def tallies(aid: str) -> str:
    """A finished alert's metrics tallies, JSON, so a scrape does not rescan it."""
    return f"{{a:{aid}}}:tallies"


# Providers, shared by every worker (channels/routing.py, channels/pacing.py)
def route_health(channel: str, provider: str, bucket: int) -> str:
    """Counters of one provider in one 10-second bucket (hash of channels.routing.COUNTERS)."""
    return f"route:{channel}:{provider}:{bucket}"


# The split and its switches share a hash tag: one script writes both.
def route_split(channel: str) -> str:
    """The split in force: `state` ("twilio=5,kannel=95"), `shares` JSON, `at_ms`."""
    return f"{{route:{channel}}}:split"


def route_switches(channel: str) -> str:
    """Past switches, newest first: JSON {at_ms, from, to, reason}."""
    return f"{{route:{channel}}}:switches"


def pace_bucket(channel: str, provider: str, sender: str = "") -> str:
    """A pace bucket: per provider account, or per sender number of it.

    The hash tag keeps a provider's buckets in one Cluster slot, so one
    script can reserve in all of them."""
    tag = f"{{pace:{channel}:{provider}}}"
    return f"{tag}:from:{sender}" if sender else tag


# Paper mail (channels/mail.py)
def letter(letter_id: str) -> str:
    """A letter id -> the send it belongs to (`Message.ref`)."""
    return f"mail:letter:{letter_id}"


def letter_batch(batch_id: str) -> str:
    """A batch id -> the letter ids in it (JSON), to fail them all if it is refused."""
    return f"mail:batch:{batch_id}"


MAIL_BATCHER = "mail:batcher"  # the lease of the one process that batches letters
PRINT_HOUSE_DOWN = "mail:dropbox:down"  # since when (ms) the print house's drop box fails, while it does
