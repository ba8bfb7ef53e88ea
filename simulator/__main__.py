"""`python -m simulator`: the provider simulator alone, for manual runs and `gateway simulate`.

Every SimConfig field is an option (`--time-scale 0.1`, `--printhouse-dir var/print`, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc

from simulator.app import SimConfig, start

# How each annotated field type is read from the command line.
_PARSERS = {"int": int, "float": float, "int | None": int, "float | None": float}
# Shorter names the CLI has always accepted.
_ALIASES = {"behaviour_file": "--behaviour", "faults_file": "--faults"}


def parse(argv: list[str] | None = None) -> SimConfig:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    for field in dataclasses.fields(SimConfig):
        flags = [f"--{field.name.replace('_', '-')}"] + ([_ALIASES[field.name]] if field.name in _ALIASES else [])
        parser.add_argument(*flags, dest=field.name, type=_PARSERS.get(field.type, str), default=field.default)
    return SimConfig(**vars(parser.parse_args(argv)))


async def serve(config: SimConfig) -> None:
    runner, port = await start(config)
    # The city's behaviour records live as long as the simulator: keep the
    # collector from walking them again at every full collection.
    gc.freeze()
    print(f"simulator on http://{config.host}:{port} (account {config.account_sid})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parse()))
