"""What a city's operations team deploys (docker/) is something that runs:
the compose file is one Compose accepts, every process it starts is a real
`gateway` command, every setting it passes is one the gateway reads, and the
image is built the way a security review expects."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click
import jsonschema
import pytest
import yaml

from gateway.cli import main
from gateway.config import Settings, variables

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE_SCHEMA = ROOT / "tests" / "standards" / "compose-spec.json"
IMAGE = "accessibility-gateway"


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def gateway_services() -> dict[str, dict]:
    return {name: s for name, s in compose()["services"].items() if s.get("image", "").startswith(IMAGE + ":")}


def documented(path: Path) -> set[str]:
    """Names an env file sets or shows commented out (`# NAME=default`)."""
    return set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", path.read_text(), re.M))


def resolve(args: list[str]) -> click.Command:
    """The `gateway` command these arguments run, with its options parsed:
    an unknown command, option or value raises as it would in the container."""
    command: click.Command = main
    ctx = click.Context(main, info_name="gateway")
    rest = list(args)
    while isinstance(command, click.Group):
        name, *rest = rest
        sub = command.get_command(ctx, name)
        assert sub is not None, f"`gateway {name}` is no command"
        command, ctx = sub, click.Context(sub, info_name=name, parent=ctx)
    command.parse_args(ctx, rest)
    return command


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of docker/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def test_the_compose_file_is_one_the_compose_specification_accepts():
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.validate(compose(), schema, cls=jsonschema.Draft7Validator)


def test_a_compose_file_the_specification_refuses_is_caught():
    # The check above can fail: a misspelt key is refused.
    bad = compose()
    bad["services"]["api"]["replica"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(COMPOSE_SCHEMA.read_text()), cls=jsonschema.Draft7Validator)


def test_the_whole_system_is_in_the_compose_file():
    services = compose()["services"]
    commands = {name: resolve(s["command"]).name for name, s in gateway_services().items()}
    assert sorted(commands.values()) == ["api", "pump", "simulate", "worker"]
    assert services[next(n for n, c in commands.items() if c == "api")]["deploy"]["replicas"] == 2
    redis = services["redis"]
    assert "--appendonly" in redis["command"] and redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"]), "Redis's AOF must be on a volume"
    assert services["rabbitmq"]["image"].startswith("rabbitmq:")
    for name in ("redis", "rabbitmq", "api", "simulator"):
        assert services[name]["healthcheck"]["test"], name


def test_every_service_runs_a_real_gateway_command():
    for name, service in gateway_services().items():
        resolve(service["command"])
    with pytest.raises(click.UsageError):
        resolve(["api", "--no-such-option"])
    with pytest.raises(AssertionError):
        resolve(["serve"])


def test_every_variable_the_compose_file_sets_is_one_the_gateway_reads():
    for name, service in gateway_services().items():
        unknown = set(service["environment"]) - variables()
        assert not unknown, f"{name} sets {unknown}, which gateway/config.py never reads"


def test_env_example_documents_every_setting_and_nothing_else():
    names = documented(DOCKER / ".env.example")
    assert variables() - names == set(), "undocumented in docker/.env.example"
    # Anything else must be a variable the compose file itself interpolates.
    compose_text = (DOCKER / "compose.yaml").read_text()
    stray = {n for n in names - variables() if "${" + n not in compose_text}
    assert not stray, f"docker/.env.example names {stray}, which neither the gateway nor compose reads"


def test_a_worker_started_from_the_apis_environment_has_the_same_settings(tmp_path):
    settings = Settings.from_env({"GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_BATCH_SIZE": "50",
                                  "GATEWAY_CALLBACK_NETWORKS": "10.20.0.0/16"})
    assert Settings.from_env(settings.env()) == settings
    assert settings.redis_url is None  # embedded Redis stays the default
    assert set(settings.env()) == variables()


def test_the_dockerfile_passes_hadolint():
    # Its rules include: a tagged base, apt with --no-install-recommends and
    # its lists removed, no ADD of a URL, the last USER not root.
    found = subprocess.run([shutil.which("hadolint") or Path(sys.executable).with_name("hadolint"), "--no-color",
                            str(DOCKER / "Dockerfile")], capture_output=True, text=True)
    assert found.returncode == 0, found.stdout + found.stderr


def test_the_image_is_pinned_runs_as_no_root_and_bakes_in_no_secret():
    # What hadolint leaves to us: an exact base version, a USER at all, no secret in ENV or ARG.
    steps = dockerfile()
    bases = [args for op, args in steps if op == "FROM"]
    assert bases and all(re.search(r"@sha256:[0-9a-f]{64}|:\d+\.\d+\.\d+[-\w.]*$", b.split()[0]) for b in bases), bases
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    for op, args in steps:
        if op in ("ENV", "ARG"):
            assert not re.search(r"(KEY|TOKEN|SECRET|PASSWORD)\w*=", args), args
    # The image's entry point is the CLI: a compose command is its arguments.
    assert [json.loads(a) for op, a in steps if op == "ENTRYPOINT"] == [["gateway"]]


def test_the_image_carries_the_code_and_nothing_local():
    rules = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert rules[0] == "**", "everything is left out unless named"
    admitted = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = set()
    for op, args in dockerfile():
        if op == "COPY":
            *sources, _ = shlex.split(args)
            copied.update(s.rstrip("/") for s in sources if not s.startswith("--"))
    assert copied == admitted
    assert not admitted & {".env", "docker", "var", ".venv", "tests"}


def test_the_readmes_settings_table_names_every_variable_the_gateway_reads():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Settings"):readme.index("### When Redis fails over")]
    named = {name for row in table.splitlines() if row.startswith("| `")
             for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}
    assert named == variables()


def test_the_simulator_service_serves_and_writes_what_the_gateway_services_read(tmp_path):
    # The compose command with its container paths moved under tmp_path and a free port.
    command = gateway_services()["simulator"]["command"]
    port = socket_free_port()
    args = [str(tmp_path / a[len("/srv/"):]) if a.startswith("/srv/") else a for a in command]
    args[args.index("--port") + 1] = str(port)
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--residents") + 1] = "20"
    gateway_env = gateway_services()["api"]["environment"]
    account = tmp_path / gateway_env["GATEWAY_FCM_SERVICE_ACCOUNT"].split(":-")[1].rstrip("}")[len("/srv/"):]
    proc = subprocess.Popen([sys.executable, "-m", "gateway", *args], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/stats", timeout=2):
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "the simulator did not answer within 60 s"
                time.sleep(0.2)
        assert json.loads(account.read_text())["type"] == "service_account"
        assert (tmp_path / "simulator" / "city" / "residents.ndjson").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def socket_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
