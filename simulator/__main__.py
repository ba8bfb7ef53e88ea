"""`python -m simulator`: the provider simulator alone, for manual runs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses

from simulator.app import SimConfig, start


def parse(argv: list[str] | None = None) -> SimConfig:
    defaults = SimConfig()
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument("--account-sid", default=defaults.account_sid)
    parser.add_argument("--auth-token", default=defaults.auth_token)
    parser.add_argument("--gateway-url", default=defaults.gateway_url)
    parser.add_argument("--time-scale", type=float, default=defaults.time_scale)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--behaviour", dest="behaviour_file", default=None, help="NDJSON, one resident a line")
    parser.add_argument("--faults", dest="faults_file", default=None, help="JSON faults per provider")
    args = vars(parser.parse_args(argv))
    names = {f.name for f in dataclasses.fields(SimConfig)}
    return SimConfig(**{k: v for k, v in args.items() if k in names})


async def serve(config: SimConfig) -> None:
    runner, port = await start(config)
    print(f"simulator on http://{config.host}:{port} (account {config.account_sid})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parse()))
