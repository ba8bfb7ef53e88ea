"""`gateway`: run the service, manage agencies and residents, simulate, demo."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from pathlib import Path

import click

from .config import Settings
from .crypto import Vault
from .store import connect
from .terminal import console, progress


def _settings() -> Settings:
    return Settings.from_env()


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """A public-alerting gateway that falls back from channel to channel until
    every resident confirmably has the message."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--workers", type=int, default=None, help="Worker processes (default GATEWAY_WORKER_CONCURRENCY).")
def run(workers: int | None) -> None:
    """API, pump and workers on this machine (embedded Redis unless GATEWAY_REDIS_URL)."""
    from . import service

    settings = _settings()
    u = service.urls(settings)
    worker = service.spawn_worker(settings, u, workers)
    console.print(f"gateway on http://{settings.api_host}:{settings.api_port}  (redis {u.redis})")
    try:
        with _refusing_other_keys():
            service.run(service.run_until_signalled(settings, u))
    finally:
        service.stop_process(worker)
        if u.embedded:
            u.embedded.stop()


@contextlib.contextmanager
def _refusing_other_keys():
    """A process whose keys differ from the other processes' stops with the reason, not a traceback."""
    from .shared_keys import KeyMismatch

    try:
        yield
    except KeyMismatch as e:
        raise click.ClickException(str(e)) from None


@main.command()
@click.option("--no-pump", is_flag=True, help="Leave the timers to a separate `gateway pump`.")
def api(no_pump: bool) -> None:
    """The HTTP API (agency API, webhooks), with the pump unless --no-pump."""
    from . import service

    settings = _settings()
    with _refusing_other_keys():
        service.run(service.run_until_signalled(settings, service.urls(settings), with_pump=not no_pump))


@main.command()
@click.option("--concurrency", type=int, default=None)
@click.option("--loglevel", default="WARNING")
def worker(concurrency: int | None, loglevel: str) -> None:
    """A Celery worker: fan-out, sends, escalations."""
    from . import service

    settings = _settings()
    with _refusing_other_keys():
        service.run_worker(settings, service.urls(settings), concurrency, loglevel)


@main.command()
def pump() -> None:
    """Moves due timers to the workers (one leader at a time)."""
    from . import service

    settings = _settings()
    with _refusing_other_keys():
        service.run(service.run_pump(settings, service.urls(settings)))


@main.group()
def agency() -> None:
    """Agencies and their API keys."""


@agency.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, help="Repeat; default: all scopes.")
@click.option("--district", "districts", multiple=True, help="Repeat to limit the agency's area.")
@click.option("--polygon", "polygons", multiple=True,
              help='Repeat to limit the area: "lat,lon lat,lon ..." closed, as in CAP.')
@click.option("--callback-url", default=None, help="Where the gateway POSTs delivery outcomes, signed.")
@click.option("--rate", type=int, default=50, help="Requests a second.")
def agency_create(name: str, scopes: tuple[str, ...], districts: tuple[str, ...], polygons: tuple[str, ...],
                  callback_url: str | None, rate: int) -> None:
    """Create an agency and print its API key (and callback secret) once."""
    from .agencies import SCOPES, callback_problem, create_agency, set_callback
    from .egress import Egress
    from .geo import ring_problem

    try:
        areas = [[[float(x) for x in point.split(",")] for point in text.split()] for text in polygons]
    except ValueError:
        raise click.BadParameter("each point is lat,lon", param_hint="--polygon") from None
    for ring in areas:
        if problem := ring_problem(ring):
            raise click.BadParameter(problem, param_hint="--polygon")

    async def go():
        # Checked before the agency is made: a refused URL leaves nothing behind.
        if callback_url and (problem := await callback_problem(callback_url, Egress(_settings().callback_networks))):
            raise click.BadParameter(problem, param_hint="--callback-url")
        async with _redis() as redis:
            ag, key = await create_agency(redis, name, scopes or SCOPES, districts, rate, areas=areas)
            secret = await set_callback(redis, ag.id, callback_url) if callback_url else None
            return ag, key, secret

    try:
        ag, key, secret = asyncio.run(go())
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    console.print(f"agency [bold]{ag.name}[/] ({ag.id}), scopes {', '.join(sorted(ag.scopes))}")
    console.print("API key (shown once, store it now):")
    click.echo(key)
    if secret:
        console.print("callback signing secret (shown once):")
        click.echo(secret)


@main.group()
def operator() -> None:
    """Operator accounts of the /ops console."""


@operator.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator", "admin"]), default="viewer", show_default=True,
              help="viewer reads; operator also acts on alerts; admin also manages operators.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (scripts).")
def operator_create(name: str, role: str, password_stdin: bool) -> None:
    """Create an operator; the password is prompted for unless --password-stdin."""
    import sys

    from .console.auth import OperatorError, create_operator

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def go():
        async with _redis() as redis:
            return await create_operator(redis, name, role, password)

    try:
        op = asyncio.run(go())
    except OperatorError as e:
        console.print(f"[red]{e}[/]")
        raise SystemExit(1)
    console.print(f"operator [bold]{op.name}[/] created with role {op.role}")


@main.group()
def residents() -> None:
    """The resident registry."""


@residents.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-bad-rows", is_flag=True,
              help="Import the good lines and name each bad one (default: one bad line and nothing is imported).")
def residents_import(file: Path, skip_bad_rows: bool) -> None:
    """Import NDJSON or CSV (by extension); all or nothing unless --skip-bad-rows."""
    from .problems import Problem

    fmt = "csv" if file.suffix.lower() == ".csv" else "ndjson"
    try:
        counts, errors = asyncio.run(_import(_settings(), file, fmt, skip_bad_rows))
    except Problem as p:
        console.print(f"[red]{p.detail}[/]")
        for e in p.errors:
            console.print(f"  {e['field']}: {e['detail']}")
        raise SystemExit(1)
    for e in errors:
        console.print(f"  line {e['line']}: {e['field']}: {e['detail']}" if e["field"] else
                      f"  line {e['line']}: {e['detail']}")
    bad = len({e["line"] for e in errors})
    console.print(f"imported {counts.total()} residents: {counts['created']} new, {counts['updated']} changed, "
                  f"{counts['unchanged']} already so" + (f"; {bad} bad lines skipped" if bad else ""))


@residents.command("reverify")
@click.option("--agency", "agency_id", required=True, help="The agency the campaign is sent for (its id).")
@click.option("--district", "districts", multiple=True, help="Only these districts (default: the agency's).")
def residents_reverify(agency_id: str, districts: tuple[str, ...]) -> None:
    """Ask residents whose numbers are unconfirmed for GATEWAY_CONTACT_STALE_DAYS
    "is this still your number? answer 1" (a Minor alert; the workers send it)."""
    from types import SimpleNamespace

    from . import reverify, tasks
    from .agencies import get_agency
    from .embedded_redis import resolve_urls

    settings = _settings()

    async def go() -> tuple[str | None, int]:
        async with _redis(settings) as redis:
            agency = await get_agency(redis, agency_id)
            if agency is None:
                raise reverify.OutsideArea(f"no agency {agency_id}")
            redis_url, broker_url, _ = resolve_urls(settings)
            tasks.configure(broker_url, redis_url)
            dispatch = SimpleNamespace(
                fan_out=lambda aid, turn: tasks.fan_out.apply_async((aid,), priority=tasks.priority(turn)))
            return await reverify.start(redis, dispatch, agency, settings.contact_stale_days, frozenset(districts))

    try:
        aid, count = asyncio.run(go())
    except reverify.OutsideArea as e:
        console.print(f"[red]{e}[/]")
        raise SystemExit(1)
    console.print(f"campaign {aid} asks {count} residents" if aid else "nobody's number is stale: nothing sent")


async def _import(settings: Settings, file: Path, fmt: str, skip_bad_rows: bool) -> tuple[Counter, list[dict]]:
    from .resident_import import import_file

    async with _redis(settings) as redis:
        return await import_file(settings, file, fmt, redis, skip_bad_rows=skip_bad_rows)


@contextlib.asynccontextmanager
async def _redis(settings: Settings | None = None):
    """The state Redis for one command; an embedded server this command had
    to start is stopped again (one already running is only joined)."""
    from .embedded_redis import resolve_urls

    redis_url, _, embedded = resolve_urls(settings or _settings())
    redis = connect(redis_url)
    try:
        yield redis
    finally:
        await redis.aclose()
        if embedded is not None and embedded.proc is not None:
            embedded.stop()


@main.group("keys")
def contact_keys() -> None:
    """The key that seals contact data, and its rotation (README: Security and privacy)."""


@contact_keys.command("new")
def keys_new() -> None:
    """Print a fresh key for GATEWAY_CONTACT_KEY (the old one goes to GATEWAY_CONTACT_KEYS_OLD)."""
    import base64
    import os

    click.echo(base64.urlsafe_b64encode(os.urandom(32)).decode())


@contact_keys.command("reseal")
@click.option("--page", type=int, default=500, show_default=True, help="Residents per round trip.")
def keys_reseal(page: int) -> None:
    """Re-seal every resident's contact data, and the letters waiting in the
    mail tray, with the current key. Safe while the gateway runs, and to stop
    and run again; once it has run, the old keys can go."""
    settings = _settings()
    resealed, total, letters = asyncio.run(reseal(settings, page))
    console.print(f"re-sealed {resealed} of {total} residents and {letters} mail tray files; all now under key "
                  f"{Vault.of(settings).current_key_id.hex()}")


async def reseal(settings: Settings, page: int = 500, redis=None) -> tuple[int, int, int]:
    """(residents re-sealed, residents seen, mail tray files re-sealed)."""
    if redis is None:
        async with _redis(settings) as redis:
            return await reseal(settings, page, redis)
    from channels import discover
    from channels.base import ChannelContext

    from .registry import Registry, every_resident_id

    registry = Registry(redis, Vault.of(settings))
    with progress() as bar:
        rids = await every_resident_id(redis)
        task = bar.add_task("re-sealing residents", total=len(rids))
        resealed = 0
        for i in range(0, len(rids), page):
            resealed += await registry.reseal(await registry.sealed_with_old_keys(rids[i:i + page]))
            bar.advance(task, len(rids[i:i + page]))
        task = bar.add_task("re-sealing the mail tray", total=None)
        mail = discover()["mail"](ChannelContext(settings=settings, report=None, compose=None, redis=redis))
        letters = await mail.reseal_tray()
        bar.update(task, total=letters, completed=letters)
    return resealed, len(rids), letters


@main.group()
def vapid() -> None:
    """Web Push (VAPID) keys."""


@vapid.command("generate")
def vapid_generate() -> None:
    """Print a new VAPID key pair: the private key for GATEWAY_VAPID_PRIVATE_KEY,
    the public one for the browser's applicationServerKey."""
    from channels.webpush import generate_keys

    private, public = generate_keys()
    click.echo(f"GATEWAY_VAPID_PRIVATE_KEY={private}")
    click.echo(f"applicationServerKey={public}")


@vapid.command("public")
def vapid_public() -> None:
    """Print the applicationServerKey of the configured (or generated) VAPID key."""
    from channels.webpush import public_key

    click.echo(public_key(_settings().vapid_private_key))


@main.command()
@click.option("--residents", "count", type=int, default=1000, show_default=True, help="Residents to create.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("var/city"), show_default=True)
@click.option("--serve/--no-serve", default=False, help="Then serve the provider simulator.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Where the simulator listens (0.0.0.0 in a container).")
@click.option("--port", type=int, default=8900, show_default=True)
@click.option("--public-url", default=None, help="How the gateway reaches the simulator (its Web Push endpoints); "
              "default http://127.0.0.1:PORT.")
@click.option("--gateway-url", default="http://127.0.0.1:8080", show_default=True)
@click.option("--time-scale", type=float, default=1.0, show_default=True)
@click.option("--printhouse-dir", type=click.Path(file_okay=False), default=None,
              help="Serve a print house on this drop box (the gateway's GATEWAY_PRINTHOUSE).")
@click.option("--fcm-service-account", type=click.Path(dir_okay=False), default=None,
              help="Write the FCM service account here (the gateway's GATEWAY_FCM_SERVICE_ACCOUNT).")
def simulate(count: int, seed: int, out: Path, serve: bool, host: str, port: int, public_url: str | None,
             gateway_url: str, time_scale: float, printhouse_dir: str | None, fcm_service_account: str | None) -> None:
    """Create a virtual city (residents.ndjson for `gateway residents import`,
    behaviour.ndjson for the simulator) and optionally serve the simulator."""
    from simulator.city import generate

    with progress() as bar:
        task = bar.add_task("city", total=count)
        files = generate(count, seed, out, sim_base_url=public_url or f"http://127.0.0.1:{port}",
                         on_progress=lambda done, total: bar.update(task, completed=done))
    console.print(f"{files.count} residents: {files.residents}  behaviour: {files.behaviour}")
    if serve:
        from simulator.__main__ import serve as serve_sim
        from simulator.app import SimConfig

        settings = _settings()
        config = SimConfig(host=host, port=port, gateway_url=gateway_url, time_scale=time_scale, seed=seed,
                           behaviour_file=str(files.behaviour), printhouse_dir=printhouse_dir,
                           fcm_service_account=fcm_service_account,
                           **({"account_sid": settings.twilio_account_sid, "auth_token": settings.twilio_auth_token}
                              if settings.twilio_account_sid else {}))
        asyncio.run(serve_sim(config))


@main.command()
@click.option("--residents", "count", type=int, default=2000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of figures.")
@click.option("--seed", type=int, default=7, show_default=True)
def demo(count: int, as_json: bool, seed: int) -> None:
    """A virtual city, a heat-wave alert, live progress per channel, a summary."""
    from .demo import run_demo

    raise SystemExit(run_demo(count, seed, as_json, console))
