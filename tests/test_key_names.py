"""Every Redis key is named in gateway/keys.py, so a reader finds them all in one place.

The check works out from keys.py itself what its keys start with, then reads
every Python file of the tree for a string or f-string that starts the same
way: such a literal builds a key by hand. The Lua scripts get their alert
keys as KEYS[1] and add suffixes to it; those suffixes must be ones keys.py
builds too.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from gateway import keys

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("gateway", "channels", "simulator", "bench", "tests")
HOLE = "\x00"
# Strings that start like a key but name something else.
NOT_KEYS = {
    ("gateway/api/alerts.py", "agency:"): "who reopened deliveries, as an alert's history names them",
}


def key_shapes() -> list[str]:
    """Every key builder of keys.py, called with a hole for each argument."""
    builders = [f for f in vars(keys).values() if inspect.isfunction(f) and f.__module__ == keys.__name__]
    return [f(*[HOLE] * len(inspect.signature(f).parameters)) for f in builders]


def key_prefixes() -> set[str]:
    """The literal start of every key keys.py names: a builder's text up to its
    first argument; a constant whole, if it has a colon (bare words such as
    `residents` or `alerts` are also JSON fields and would match anything)."""
    found = {shape.split(HOLE)[0] for shape in key_shapes()}
    found |= {v for name, v in vars(keys).items() if name.isupper() and isinstance(v, str) and ":" in v}
    return found


def leading_text(node: ast.AST) -> str | None:
    """A string literal's text, or an f-string's up to its first placeholder."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        text = ""
        for part in node.values:
            if not isinstance(part, ast.Constant):
                break
            text += part.value
        return text
    return None


def key_like_literals() -> list[tuple[str, str, str]]:
    """(file:line, literal, the keys.py prefix it starts with) of every file but keys.py and this test."""
    prefixes = key_prefixes()
    found = []
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in ("gateway/keys.py", "tests/test_key_names.py") or "node_modules" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), name)
            inside_fstrings = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
            for node in ast.walk(tree):
                text = None if id(node) in inside_fstrings else leading_text(node)
                for prefix in sorted(prefixes):
                    if text and text.startswith(prefix):
                        found.append((f"{name}:{node.lineno}", text, prefix))
    return found


def test_no_module_but_gateway_keys_builds_a_redis_key_name():
    hits = key_like_literals()
    assert [h for h in hits if (h[0].split(":")[0], h[2]) not in NOT_KEYS] == []
    # Each exception still has its literal, so none outlives the code it excused.
    assert {(h[0].split(":")[0], h[2]) for h in hits} == set(NOT_KEYS)


def test_the_check_knows_the_prefixes_of_keys_py():
    # A check that derived no prefixes, or lost the hash-tagged ones, would pass anything.
    assert {"r:", "{a:", "phone:", "{route:", "{pace:", "mail:letter:", "alerts:active"} <= key_prefixes()
    assert "residents" not in key_prefixes()


def alert_suffixes() -> set[str]:
    """What keys.py adds to an alert's hash tag, e.g. `:count`, `:bits:`."""
    tag = keys.alert(HOLE)
    return {shape[len(tag):].split(HOLE)[0] for shape in key_shapes() if shape.startswith(tag)} - {""}


def test_the_lua_scripts_name_only_alert_keys_that_keys_py_builds():
    scripts = [ROOT / "gateway/transitions.lua", *(ROOT / "gateway/transitions").glob("*.lua")]
    lua = "".join(p.read_text() for p in scripts)
    used = set(re.findall(r"\bA \.\. '(:[a-z]+:?)'", lua))
    assert {":count", ":d:", ":timers"} <= used
    assert used - alert_suffixes() == set()
