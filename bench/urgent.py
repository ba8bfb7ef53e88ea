"""How long an evacuation order waits behind a water cut's backlog of escalations.

    git archive main | (mkdir -p /tmp/urgent-old && tar -x -C /tmp/urgent-old)
    .venv/bin/python bench/urgent.py --baseline /tmp/urgent-old --backlog 600 --urgent 200

The drill of tests/e2e/test_urgent_first.py (tests/e2e/urgent_drill.py): a
Moderate alert whose `backlog` residents' SMS steps time out and whose calls
are paced at 10 a second, then, once its first call is placed, an Extreme
alert to `urgent` other residents. Every process is its own (ProcessStack:
redis-server, the broker, the API, the pump, one worker of two processes,
the simulator). Printed per run: seconds from posting the Extreme alert to its
first send, to its last resident's first attempt, and to the Moderate alert's
last call, and how many of those calls were still to come when the Extreme
alert's last first attempt went out. With --baseline, each run is made for
this checkout and then for the other one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

from process_stack import ProcessStack  # noqa: E402
from urgent_drill import SETTINGS, drill  # noqa: E402


async def one(code: Path | None, broker: str, backlog: int, urgent: int) -> None:
    with tempfile.TemporaryDirectory(prefix="urgent-") as tmp, \
            ProcessStack(Path(tmp), workers=1, broker=broker, env=SETTINGS, code=code) as stack:
        f = await drill(stack, backlog, urgent, until_drained=True)
    print(f"  {'baseline' if code else 'this':8} {broker:8}  first send {f.first_s:6.1f} s  "
          f"last first attempt {f.last_first_s:6.1f} s  backlog drained {f.drained_s:6.1f} s  "
          f"calls still to come {f.backlog_left:4d} of {f.backlog}  (load {os.getloadavg()[0]:.1f})", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=600, help="Moderate residents to be called")
    parser.add_argument("--urgent", type=int, default=200, help="Extreme residents")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--broker", action="append", choices=["redis", "rabbitmq"],
                        help="repeat for both (default: redis)")
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="a checkout of another commit")
    args = parser.parse_args()
    codes = [None] + ([args.baseline.resolve()] if args.baseline else [])
    print(f"backlog {args.backlog}, urgent {args.urgent}, load {os.getloadavg()}")
    for _ in range(args.runs):
        for broker in args.broker or ["redis"]:
            for code in codes:
                await one(code, broker, args.backlog, args.urgent)


if __name__ == "__main__":
    asyncio.run(main())
