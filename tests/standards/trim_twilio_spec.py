"""Trims Twilio's OpenAPI description to what the tests check: Messages and Calls.

Run it on a fresh copy of twilio/twilio-oai `spec/json/twilio_api_v2010.json`
to refresh `twilio_api_v2010.json` here:

    python tests/standards/trim_twilio_spec.py path/to/twilio_api_v2010.json

It keeps the four paths the simulator serves (create, fetch and list of
messages and calls), every component schema they reference (transitively),
and `info` with the licence, all unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ACCOUNT = "/2010-04-01/Accounts/{AccountSid}"
KEPT_PATHS = [f"{ACCOUNT}/Messages.json", f"{ACCOUNT}/Messages/{{Sid}}.json",
              f"{ACCOUNT}/Calls.json", f"{ACCOUNT}/Calls/{{Sid}}.json"]


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if "$ref" in node else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def trim(spec: dict[str, Any]) -> dict[str, Any]:
    paths = {p: spec["paths"][p] for p in KEPT_PATHS}
    schemas = spec["components"]["schemas"]
    wanted, todo = set(), _refs(paths)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo |= _refs(schemas[name])
    components = {"schemas": {n: schemas[n] for n in sorted(wanted)}}
    if "securitySchemes" in spec["components"]:
        components["securitySchemes"] = spec["components"]["securitySchemes"]
    return {"openapi": spec["openapi"], "info": spec["info"], "servers": spec.get("servers", []),
            "security": spec.get("security", []), "paths": paths, "components": components}


if __name__ == "__main__":
    source = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    out = HERE / "twilio_api_v2010.json"
    out.write_text(json.dumps(trim(source), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{out}: {out.stat().st_size} bytes")
