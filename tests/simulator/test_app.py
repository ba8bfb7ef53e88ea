"""The simulator starts from files and flags, as `gateway simulate` starts it."""

from __future__ import annotations

import aiohttp
import orjson
from simkit import wait_for

from simulator import simulator_of, start
from simulator.__main__ import parse


async def test_a_simulator_started_from_the_command_line_loads_its_city_and_faults(tmp_path):
    city = tmp_path / "behaviour.ndjson"
    city.write_bytes(orjson.dumps({"resident": "r1", "phones": ["+821012345678"], "voice": {"answer": "busy"}}) + b"\n")
    faults = tmp_path / "faults.json"
    faults.write_bytes(orjson.dumps({"twilio-voice": {"error_rate": 0.5}}))
    config = parse(["--port", "0", "--time-scale", "0.01", "--seed", "3", "--behaviour", str(city), "--faults", str(faults)])
    runner, port = await start(config)
    try:
        sim = simulator_of(runner)
        assert port == config.port != 0 and sim.base_url == f"http://127.0.0.1:{port}"
        assert sim.behaviour.by_phone("+821012345678")["voice"]["answer"] == "busy"
        async with aiohttp.ClientSession(base_url=sim.base_url) as http:
            await http.put("/_sim/faults", json={})
            async with http.post("/_sim/reset"):
                pass
            async with http.get("/_sim/faults") as resp:
                # A reset goes back to the faults the simulator started with.
                assert (await resp.json())["twilio-voice"]["error_rate"] == 0.5
    finally:
        await runner.cleanup()


async def test_the_print_house_collects_from_its_drop_box_when_given_one(tmp_path):
    runner, _ = await start(parse(["--port", "0", "--printhouse-dir", str(tmp_path / "print")]))
    try:
        for folder in ("inbox", "outbox", "done"):
            await wait_for(lambda folder=folder: (tmp_path / "print" / folder).is_dir())
    finally:
        await runner.cleanup()
