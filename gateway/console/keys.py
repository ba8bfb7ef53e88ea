"""The Redis keys of the console and resident pages; gateway/keys.py holds the engine's.

Per-alert keys share the alert's hash tag `{a:<id>}` so they live in its slot.
"""

from __future__ import annotations

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
