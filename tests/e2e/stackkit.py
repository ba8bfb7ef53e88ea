"""What the e2e tests share about their stack: the simulator's Twilio account
and a free port. A module of its own, because `from conftest import ...` finds
whichever conftest pytest imported last (tests/simulator has one too)."""

from __future__ import annotations

import socket

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f"
FROM = "+15005550006"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
