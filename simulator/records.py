"""What each resident received: the simulator's ground truth.

Tests and the demo ask it who got what, in which language, what they pressed
or replied, and whether the gateway told anyone the same thing twice. Entries
are plain dicts (cheap to append at 100k messages, JSON as they are) indexed
by resident and by provider reference.
"""

from __future__ import annotations

import time
from typing import Any, Iterator


class Records:
    def __init__(self) -> None:
        self._by_resident: dict[str, list[dict[str, Any]]] = {}
        self._by_ref: dict[str, dict[str, Any]] = {}
        # (channel, text) each resident has already received, to spot duplicates.
        self._received: dict[str, set[tuple[str, str]]] = {}
        self.duplicates: dict[str, int] = {}
        # Callbacks the simulator gave up on after its retries.
        self.lost_callbacks: list[dict[str, Any]] = []

    def add(
        self,
        resident: str,
        channel: str,
        provider: str,
        ref: str,
        *,
        to: str,
        text: str = "",
        language: str | None = None,
        status: str = "queued",
        **extra: Any,
    ) -> dict[str, Any]:
        """One thing sent towards a resident (message, call, push, letter)."""
        entry = {
            "resident": resident,
            "channel": channel,
            "provider": provider,
            "ref": ref,
            "to": to,
            "text": text,
            "language": language,
            "status": status,
            "created_at": time.time(),
            "received_at": None,
            "duplicate": False,
            **extra,
        }
        self._by_resident.setdefault(resident, []).append(entry)
        self._by_ref[ref] = entry
        return entry

    def get(self, ref: str) -> dict[str, Any] | None:
        return self._by_ref.get(ref)

    def receive(self, entry: dict[str, Any]) -> None:
        """The resident now has it; the same text on the same channel again is a duplicate."""
        entry["received_at"] = time.time()
        seen = self._received.setdefault(entry["resident"], set())
        key = (entry["channel"], entry["text"])
        if key in seen:
            entry["duplicate"] = True
            self.duplicates[entry["resident"]] = self.duplicates.get(entry["resident"], 0) + 1
        else:
            seen.add(key)

    def for_resident(self, resident: str) -> list[dict[str, Any]]:
        return self._by_resident.get(resident, [])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._by_ref.values())

    def __len__(self) -> int:
        return len(self._by_ref)

    def clear(self) -> None:
        self._by_resident.clear()
        self._by_ref.clear()
        self._received.clear()
        self.duplicates.clear()
        self.lost_callbacks.clear()

    def summary(self) -> dict[str, dict[str, int]]:
        """Counts by channel and status, for /_sim/stats."""
        out: dict[str, dict[str, int]] = {}
        for entry in self._by_ref.values():
            by_status = out.setdefault(entry["channel"], {})
            by_status[entry["status"]] = by_status.get(entry["status"], 0) + 1
        return out
