"""JSON Schemas (2020-12) of what agencies send: residents and alerts.

The same dicts validate requests and go into the OpenAPI document, so the
published contract cannot drift from what the API enforces.
"""

from __future__ import annotations

NEEDS = ["blind", "low_vision", "deaf", "low_literacy", "large_print", "lives_alone", "elderly"]
HANDSETS = ["smartphone", "feature_phone", "landline"]
CHANNELS = ["push", "sms", "voice", "mail"]
SEVERITIES = ["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
URGENCIES = ["Immediate", "Expected", "Future", "Past", "Unknown"]
CERTAINTIES = ["Observed", "Likely", "Possible", "Unlikely", "Unknown"]
CONFIRMATIONS = ["posted", "delivered", "acknowledged"]
ALERT_STATUSES = ["Actual", "Exercise", "Test"]

_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}
# BCP 47, loosely: language, optional script/region/variants.
_LANG = {"type": "string", "pattern": "^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$"}
# Latitudes Redis' GEO index takes (Web Mercator's limit): a point beyond
# it could be neither stored nor searched around, so it is refused.
GEO_MAX_LAT = 85.05112878
_LAT = {"type": "number", "minimum": -GEO_MAX_LAT, "maximum": GEO_MAX_LAT}
# Text that reaches a resident (SMS, speech in TwiML, push, letters, CAP out):
# no control character but tab and line breaks, and nothing else XML 1.0
# cannot carry. The one rule for every such field, at the API and for CAP in:
# refused with a 422 naming the field, never guessed at or dropped.
UNSENDABLE = "\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\ufffe\\uffff"
TEXT_PATTERN = f"^[^{UNSENDABLE}]*$"
# The same, for text that must say something: more than spaces.
FILLED_TEXT_PATTERN = f"^[^{UNSENDABLE}]*[^{UNSENDABLE}\\s][^{UNSENDABLE}]*$"


def _text(**bounds) -> dict:
    pattern = FILLED_TEXT_PATTERN if bounds.get("minLength") else TEXT_PATTERN
    return {"type": "string", "pattern": pattern, **bounds}


_TIME_OF_DAY = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}

CONTACT_POINT = {
    "oneOf": [
        {
            "type": "object",
            "title": "Phone",
            "additionalProperties": False,
            "required": ["type", "number", "handset"],
            "properties": {
                "type": {"const": "phone"},
                "number": {"type": "string", "minLength": 3, "maxLength": 32},
                "handset": {"enum": HANDSETS},
            },
        },
        {
            "type": "object",
            "title": "FCM app push",
            "additionalProperties": False,
            "required": ["type", "token"],
            "properties": {
                "type": {"const": "fcm"},
                "token": {"type": "string", "minLength": 8, "maxLength": 4096},
            },
        },
        {
            "type": "object",
            "title": "Web Push subscription",
            "additionalProperties": False,
            "required": ["type", "endpoint", "keys"],
            "properties": {
                "type": {"const": "webpush"},
                "endpoint": {"type": "string", "format": "uri", "maxLength": 2048},
                "keys": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["p256dh", "auth"],
                    "properties": {
                        "p256dh": {"type": "string", "maxLength": 256},
                        "auth": {"type": "string", "maxLength": 64},
                    },
                },
            },
        },
        {
            "type": "object",
            "title": "Postal address",
            "additionalProperties": False,
            "required": ["type", "lines", "postcode"],
            "properties": {
                "type": {"const": "postal"},
                "lines": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 6,
                    "items": _text(minLength=1, maxLength=200),
                },
                "postcode": _text(minLength=1, maxLength=16),
                "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
            },
        },
    ]
}

RESIDENT = {
    "$id": "Resident",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "languages", "district"],
    "properties": {
        "id": _ID,
        "name": _text(minLength=1, maxLength=200),
        "languages": {"type": "array", "minItems": 1, "maxItems": 8, "items": _LANG},
        "contacts": {"type": "array", "maxItems": 16, "items": CONTACT_POINT},
        "needs": {"type": "array", "maxItems": len(NEEDS), "uniqueItems": True, "items": {"enum": NEEDS}},
        "district": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,32}$"},
        "location": {
            "type": "object",
            "additionalProperties": False,
            "required": ["lat", "lon"],
            "properties": {
                "lat": _LAT,
                "lon": {"type": "number", "minimum": -180, "maximum": 180},
            },
        },
        "birth_year": {"type": "integer", "minimum": 1890, "maximum": 2100},
        "consent": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                # Emergencies (Extreme/Severe) always go; this covers the rest.
                "non_emergency": {"type": "boolean"},
                "drills": {"type": "boolean"},
            },
        },
        "quiet_hours": {
            "type": "object",
            "additionalProperties": False,
            "required": ["start", "end"],
            "properties": {
                "start": _TIME_OF_DAY,
                "end": _TIME_OF_DAY,
                "tz": {"type": "string", "maxLength": 64},
            },
        },
    },
}

_CONTENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["headline", "body"],
    "properties": {
        "headline": _text(minLength=1, maxLength=160),
        "body": _text(minLength=1, maxLength=4000),
        "instruction": _text(maxLength=2000),
        "link": _text(format="uri", maxLength=512),
        # An easy-read short form for small screens and SMS budgets.
        "short": _text(maxLength=480),
    },
}

_STEP_TIMEOUTS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {c: {"type": "integer", "minimum": 1, "maximum": 7 * 86400} for c in CHANNELS},
}

ALERT = {
    "$id": "Alert",
    "type": "object",
    "additionalProperties": False,
    "required": ["event", "severity", "content", "audience"],
    "properties": {
        "event": _text(minLength=1, maxLength=120),
        "status": {"enum": ALERT_STATUSES},
        "severity": {"enum": SEVERITIES},
        "urgency": {"enum": URGENCIES},
        "certainty": {"enum": CERTAINTIES},
        "content": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 16,
            "propertyNames": _LANG,
            "additionalProperties": _CONTENT,
        },
        "audience": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "residents": {"type": "array", "minItems": 1, "maxItems": 100_000, "items": _ID},
                "districts": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1000,
                    "items": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,32}$"},
                },
                "everyone": {"type": "boolean", "enum": [True]},  # not `const`: a client generator miswrites it
                # Geographic targets, as CAP <area> carries them (gateway/cap/areas.py).
                # Polygon points are [lat, lon] (CAP order, WGS 84). JSON Schema
                # cannot say "first point == last point": geo.audience_problems() does.
                "areas": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 100,
                    "items": {
                        "oneOf": [
                            {
                                "type": "object",
                                "title": "Polygon",
                                "additionalProperties": False,
                                "required": ["polygon"],
                                "properties": {
                                    "polygon": {
                                        "type": "array",
                                        "minItems": 4,
                                        "maxItems": 4000,
                                        "items": {
                                            "type": "array",
                                            "prefixItems": [
                                                _LAT,
                                                {"type": "number", "minimum": -180, "maximum": 180},
                                            ],
                                            # maxItems rather than `items: false`: client generators
                                            # read no boolean schemas.
                                            "minItems": 2,
                                            "maxItems": 2,
                                        },
                                    },
                                },
                            },
                            {
                                "type": "object",
                                "title": "Circle",
                                "additionalProperties": False,
                                "required": ["circle"],
                                "properties": {
                                    "circle": {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "required": ["lat", "lon", "radius_km"],
                                        "properties": {
                                            "lat": _LAT,
                                            "lon": {"type": "number", "minimum": -180, "maximum": 180},
                                            # 0 is a point (CAP allows it); 20038 km is half
                                            # the Earth's circumference, i.e. everywhere.
                                            "radius_km": {"type": "number", "minimum": 0, "maximum": 20038},
                                        },
                                    },
                                },
                            },
                            {
                                "type": "object",
                                "title": "Geocode",
                                "additionalProperties": False,
                                "required": ["geocode"],
                                "properties": {
                                    "geocode": {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "required": ["name", "value"],
                                        "properties": {
                                            # CAP valueName (the code scheme, e.g. SAME, UGC)
                                            "name": _text(minLength=1, maxLength=64),
                                            "value": _text(minLength=1, maxLength=128),
                                        },
                                    },
                                },
                            },
                        ]
                    },
                },
            },
        },
        "policy": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "channels": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": {"enum": CHANNELS},
                },
                "confirmation": {"enum": CONFIRMATIONS},
                "step_timeouts": _STEP_TIMEOUTS,
                # Extreme alerts may start push and SMS together.
                "parallel_first": {"type": "boolean"},
                "max_attempts_per_step": {"type": "integer", "minimum": 1, "maximum": 5},
            },
        },
        "response_options": {
            "type": "array",
            "maxItems": 9,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "label"],
                "properties": {
                    "code": {"type": "string", "pattern": "^[1-9]$"},
                    "label": {
                        "type": "object",
                        "minProperties": 1,
                        "propertyNames": _LANG,
                        "additionalProperties": _text(minLength=1, maxLength=60),
                    },
                    "needs_help": {"type": "boolean"},
                },
            },
        },
        "expires": {"type": "string", "format": "date-time"},
    },
}

REOPEN = {
    "$id": "Reopen",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        # Default: every channel the severity table allows the alert.
        "channels": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": CHANNELS}},
        # Also the channels and contact points the plan tried already.
        "again": {"type": "boolean"},
    },
}

REVERIFY = {
    "$id": "Reverify",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        # Default: every district of the agency (all of them for a city-wide agency).
        "districts": {"type": "array", "minItems": 1, "maxItems": 1000, "uniqueItems": True,
                      "items": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,32}$"}},
    },
}

# What the API answers (the OpenAPI document's response bodies). ------------------

def record(required: dict, optional: dict | None = None) -> dict:
    """An answer object: these keys always, those sometimes, nothing else."""
    return {"type": "object", "additionalProperties": False, "required": list(required),
            "properties": {**required, **(optional or {})}}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
STRINGS = {"type": "array", "items": STRING}

# The resident as GET and PUT give it back: as sent, contacts opened, and which
# contact points a provider said are dead (indexes into `contacts`).
STORED_RESIDENT = {**{k: v for k, v in RESIDENT.items() if k != "$id"},
                   "properties": {**RESIDENT["properties"],
                                  "dead_contacts": {"type": "array", "items": INTEGER},
                                  # When each contact point last confirmed a delivery, or was registered.
                                  "contacts_confirmed_at": {"type": "array", "items": {
                                      "type": "string", "format": "date-time"}}}}
