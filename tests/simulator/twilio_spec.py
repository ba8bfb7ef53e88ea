"""Checks requests and responses against Twilio's own OpenAPI description.

The spec is OpenAPI 3.0: `nullable: true` becomes a JSON Schema type union and
`$ref`s are resolved inline. Stricter than the spec where Twilio's docs are:
every resource property must be present, dates must be RFC 2822 in GMT, and
the call parameters StatusCallbackEvent and MachineDetection must use the
values Twilio documents (the spec types them as bare strings).
Also usable from gateway tests to check what the gateway sends to Twilio.
"""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import orjson

# Twilio's spec, trimmed to messages and calls (tests/standards/README.md).
SPEC_PATH = Path(__file__).resolve().parents[1] / "standards" / "twilio_api_v2010.json"
ACCOUNT_PATH = "/2010-04-01/Accounts/{AccountSid}"
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")

# Documented values the spec leaves as plain strings.
_STRICTER = {
    ("Calls.json", "StatusCallbackEvent"): {"type": "array", "items": {"enum": ["initiated", "ringing", "answered", "completed"]}},
    ("Calls.json", "MachineDetection"): {"type": "string", "enum": ["Enable", "DetectMessageEnd"]},
}

FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("phone-number")
def _phone(value: object) -> bool:
    return not isinstance(value, str) or bool(_E164.match(value))


@FORMATS.checks("endpoint")
def _endpoint(value: object) -> bool:
    return not isinstance(value, str) or bool(_E164.match(value)) or value.startswith(("client:", "sip:"))


@FORMATS.checks("uri")
def _uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return (parts.scheme in ("http", "https") and bool(parts.netloc)) or value.startswith("/2010-04-01/")


@FORMATS.checks("date-time-rfc-2822")
def _rfc2822(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return value.endswith("+0000") and parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    return orjson.loads(SPEC_PATH.read_bytes())


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: refs inlined, nullable as type unions."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        resolved = to_json_schema(spec()["components"]["schemas"][name])
        if node.get("nullable"):
            resolved = {"anyOf": [resolved, {"type": "null"}]}
        return resolved
    out = {k: to_json_schema(v) for k, v in node.items() if k not in ("nullable", "description", "x-twilio", "examples")}
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _operation(path: str, method: str) -> dict[str, Any]:
    return spec()["paths"][path][method.lower()]


def resource_schema(name: str) -> dict[str, Any]:
    """A resource schema with every property required."""
    schema = to_json_schema(spec()["components"]["schemas"][name])
    return {**schema, "required": sorted(schema["properties"]), "additionalProperties": False}


def response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    raw = _operation(path, method)["responses"][str(status)]["content"]["application/json"]["schema"]
    if "$ref" in raw:
        return resource_schema(raw["$ref"].rsplit("/", 1)[-1])
    schema = to_json_schema(raw)
    for name, prop in raw["properties"].items():
        # A list page: its items are resources, held to the same standard.
        if prop.get("type") == "array" and "$ref" in prop.get("items", {}):
            schema["properties"][name]["items"] = resource_schema(prop["items"]["$ref"].rsplit("/", 1)[-1])
    return {**schema, "required": sorted(schema["properties"])}


def validate_response(path: str, method: str, status: int, body: Any) -> None:
    jsonschema.validate(body, response_schema(path, method, status), format_checker=FORMATS)


def validate_error(body: Any, status: int) -> None:
    """Twilio's error shape (not in the spec): code, message, more_info, status."""
    schema = {
        "type": "object",
        "required": ["code", "message", "more_info", "status"],
        "properties": {
            "code": {"type": "integer"},
            "message": {"type": "string"},
            "more_info": {"type": "string", "pattern": r"^https://www\.twilio\.com/docs/errors/\d+$"},
            "status": {"const": status},
        },
    }
    jsonschema.validate(body, schema)


def request_schema(path: str) -> dict[str, Any]:
    raw = _operation(path, "post")["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    schema = to_json_schema(raw)
    for (suffix, field), stricter in _STRICTER.items():
        if path.endswith(suffix) and field in schema["properties"]:
            schema["properties"][field] = stricter
    return {**schema, "additionalProperties": False}


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    """A form value as the type the spec names; left as is when it does not convert."""
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        return value
    if kind == "boolean" and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def validate_form(path: str, pairs: list[list[str]]) -> None:
    """Form fields as sent (repeated names allowed) against the operation's request body."""
    schema = request_schema(path)
    props = schema["properties"]
    document: dict[str, Any] = {}
    for name, value in pairs:
        prop = props.get(name, {})
        if prop.get("type") == "array":
            document.setdefault(name, []).append(_coerce(value, prop.get("items", {})))
        elif name in document:
            raise jsonschema.ValidationError(f"{name} sent twice")
        else:
            document[name] = _coerce(value, prop)
    jsonschema.validate(document, schema, format_checker=FORMATS)


def spec_path(url_path: str) -> str:
    """The spec's path template for a concrete request path."""
    parts = url_path.split("/")
    # /2010-04-01/Accounts/AC.../Messages.json or .../Messages/SM....json
    tail = parts[4:]
    if len(tail) == 1:
        return f"{ACCOUNT_PATH}/{tail[0]}"
    return f"{ACCOUNT_PATH}/{tail[0]}/{{Sid}}.json"
