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
                    "items": {"type": "string", "minLength": 1, "maxLength": 200},
                },
                "postcode": {"type": "string", "minLength": 1, "maxLength": 16},
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
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "languages": {"type": "array", "minItems": 1, "maxItems": 8, "items": _LANG},
        "contacts": {"type": "array", "maxItems": 16, "items": CONTACT_POINT},
        "needs": {"type": "array", "maxItems": len(NEEDS), "uniqueItems": True, "items": {"enum": NEEDS}},
        "district": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,32}$"},
        "location": {
            "type": "object",
            "additionalProperties": False,
            "required": ["lat", "lon"],
            "properties": {
                "lat": {"type": "number", "minimum": -90, "maximum": 90},
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
        "headline": {"type": "string", "minLength": 1, "maxLength": 160},
        "body": {"type": "string", "minLength": 1, "maxLength": 4000},
        "instruction": {"type": "string", "maxLength": 2000},
        "link": {"type": "string", "format": "uri", "maxLength": 512},
        # An easy-read short form for small screens and SMS budgets.
        "short": {"type": "string", "maxLength": 480},
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
        "event": {"type": "string", "minLength": 1, "maxLength": 120},
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
                # Geographic targets, as CAP <area> carries them (gateway/cap.py).
                # Polygon points are [lat, lon] (CAP order, WGS 84). JSON Schema
                # cannot say "first point == last point": cap.area_problems() does.
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
                                                {"type": "number", "minimum": -90, "maximum": 90},
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
                                            "lat": {"type": "number", "minimum": -90, "maximum": 90},
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
                                            "name": {"type": "string", "minLength": 1, "maxLength": 64},
                                            "value": {"type": "string", "minLength": 1, "maxLength": 128},
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
                        "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 60},
                    },
                    "needs_help": {"type": "boolean"},
                },
            },
        },
        "expires": {"type": "string", "format": "date-time"},
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
                                  "dead_contacts": {"type": "array", "items": INTEGER}}}
