"""What re-freezing after each full collection saves the simulator (simulator/__main__.py).

    .venv/bin/python bench/simulator_gc.py        # 2 rounds: 60,000 messages, then 20,000 calls

As in the fan-out bench, the simulator first takes a wave of SMS creates and
keeps their records, then a wave of calls that ring out unanswered.  Per
round it runs once with the collector as Python leaves it and once with
`_refreeze`, and prints the simulator's CPU per create in each wave and
its time in the collector (the steadier figure on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import gc
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator import SimConfig, start  # noqa: E402
from simulator.__main__ import _refreeze  # noqa: E402

SID, TOKEN = SimConfig.account_sid, SimConfig.auth_token


def serve(config: SimConfig, refreeze: bool, out: mp.Queue, waves_done: mp.Queue) -> None:
    async def main() -> None:
        runner, port = await start(config)
        gc.freeze()
        in_gc = [0.0, 0.0]

        def timed(phase: str, info: dict) -> None:
            if phase == "start":
                in_gc[1] = time.process_time()
            else:
                in_gc[0] += time.process_time() - in_gc[1]

        gc.callbacks.append(timed)
        if refreeze:
            gc.callbacks.append(functools.partial(_refreeze, asyncio.get_running_loop()))
        out.put(port)
        marks = [time.process_time()]
        while len(marks) < 3:
            while waves_done.empty():
                await asyncio.sleep(0.05)
            waves_done.get()
            marks.append(time.process_time())
        gc.callbacks.clear()
        out.put((marks[1] - marks[0], marks[2] - marks[1], in_gc[0]))
        await runner.cleanup()

    asyncio.run(main())


def send(url: str, waves: list[tuple[str, int]], waves_done: mp.Queue) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()}

    def form(kind: str, i: int) -> dict:
        to = f"+82105{i:07d}"
        if kind == "Calls.json":
            return {"To": to, "From": "+15005550006", "Url": "http://127.0.0.1:9/voice", "StatusCallback": "http://127.0.0.1:9/call",
                    "StatusCallbackEvent": "completed", "MachineDetection": "Enable", "Timeout": "30"}
        return {"To": to, "From": "+15005550006", "Body": "폭염 경보", "StatusCallback": "http://127.0.0.1:9/sms"}

    async def go() -> None:
        async with aiohttp.ClientSession() as http:
            for kind, count in waves:
                numbers, endpoint = iter(range(count)), f"{url}/2010-04-01/Accounts/{SID}/{kind}"

                async def sender() -> None:
                    for i in numbers:
                        async with http.post(endpoint, data=form(kind, i), headers=auth) as r:
                            await r.read()
                            assert r.status == 201, r.status

                await asyncio.gather(*(sender() for _ in range(64)))
                await asyncio.sleep(0.8)  # the last calls ring out
                waves_done.put(kind)

    asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-simgc-"))
    behaviour, faults = folder / "behaviour.ndjson", folder / "faults.json"
    behaviour.write_bytes(b"\n".join(orjson.dumps({"resident": f"r{i}", "phones": [f"+82105{i:07d}"],
                                                   "voice": {"answer": "no-answer"}}) for i in range(args.messages)))
    faults.write_bytes(orjson.dumps({"twilio-sms": {"lost_callbacks": 1.0}, "twilio-voice": {"lost_callbacks": 1.0}}))
    config = SimConfig(port=0, time_scale=0.01, seed=1, behaviour_file=str(behaviour), faults_file=str(faults))
    waves = [("Messages.json", args.messages), ("Calls.json", args.calls)]
    for n in range(args.rounds):
        figures = {}
        for refreeze in (False, True):
            out, waves_done = mp.Queue(), mp.Queue()
            server = mp.Process(target=serve, args=(config, refreeze, out, waves_done))
            server.start()
            client = mp.Process(target=send, args=(f"http://127.0.0.1:{out.get(timeout=30)}", waves, waves_done))
            client.start()
            client.join()
            messages_s, calls_s, gc_s = out.get(timeout=60)
            server.join()
            figures[refreeze] = (messages_s / args.messages * 1e6, calls_s / args.calls * 1e6, gc_s)
        (m0, c0, g0), (m1, c1, g1) = figures[False], figures[True]
        print(f"round {n + 1}: per message {m0:.0f} -> {m1:.0f} us, per call after them {c0:.0f} -> {c1:.0f} us "
              f"(re-frozen/as is: {c1 / c0:.2f}); in the collector {g0:.2f} -> {g1:.2f} s", flush=True)


if __name__ == "__main__":
    main()
