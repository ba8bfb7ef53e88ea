"""Dependencies point one way, so a newcomer can read the code from the bottom up.

    entry points   gateway.api.*, gateway.console.*, gateway.resident_pages,
        |          gateway.metrics, gateway.service, gateway.cli, gateway.demo
        v
    engine         every other gateway module: alerts, plans and their rules,
        |          the resident registry, the engine, tasks, pump, lifecycle
        v
    channels       channels/*: found by the engine through channels.discover()
        |
        v
    core           what channels and engine share: settings, Redis key names,
                   problems, the state machine's interface, sealing, forms

A module may import its own layer or one below, never one above. The
simulator stands apart: it plays the providers and imports nothing of the
gateway, and only the entry points start it. Every import counts, at module
level or inside a function; only those under `if TYPE_CHECKING:` do not, as
they are names for annotations that never run. docs/architecture.md draws the
same picture.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from channels import discover

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "channels", "simulator")

CORE = frozenset({
    "gateway.config", "gateway.crypto", "gateway.forms", "gateway.keys", "gateway.problems",
    "gateway.schemas", "gateway.transitions",
})
ENTRY_PACKAGES = ("gateway.api", "gateway.console")
ENTRY = frozenset({"gateway.__main__", "gateway.cli", "gateway.demo", "gateway.metrics",
                   "gateway.resident_pages", "gateway.service"})
LAYERS = ("core", "channels", "engine", "entry points")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


def layer(module: str) -> str:
    if module.startswith("simulator"):
        return "simulator"
    if module in CORE:
        return "core"
    if module == "channels" or module.startswith("channels."):
        return "channels"
    if module in ENTRY or module.startswith(ENTRY_PACKAGES):
        return "entry points"
    return "engine"


def _ours(name: str) -> str | None:
    """The module of ours that `name` (a module, or a name inside one) is."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _under_type_checking(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(module: str) -> dict[str, int]:
    """What `module` imports of ours, each with the line of its first import. Importing
    `a.b.c` runs `a` and `a.b` first, so those count too, unless `module` is inside them."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        if _under_type_checking(node, parents):
            continue
        for name in names:
            target = _ours(name)
            while target:
                if target in MODULES and target != module and not module.startswith(target + "."):
                    found.setdefault(target, node.lineno)
                target = target.rpartition(".")[0]
    return found


GRAPH = {module: imports(module) for module in MODULES}


def where(module: str, target: str) -> str:
    return f"{MODULES[module].relative_to(ROOT)}:{GRAPH[module][target]} imports {target}"


def test_no_module_imports_one_from_a_layer_above_it():
    upward = [f"{where(m, t)} ({layer(m)} -> {layer(t)})"
              for m, targets in GRAPH.items() if layer(m) in LAYERS
              for t in targets if layer(t) in LAYERS and LAYERS.index(layer(t)) > LAYERS.index(layer(m))]
    assert upward == []


def test_a_channel_needs_nothing_of_the_gateway_but_its_core():
    reaching = [where(m, t) for m, targets in GRAPH.items() if layer(m) == "channels"
                for t in targets if layer(t) not in ("core", "channels")]
    assert reaching == []


def test_the_gateway_finds_channels_through_discover_and_names_none():
    channel_modules = {cls.__module__ for cls in discover().values()}
    assert {"channels.sms", "channels.voice", "channels.push", "channels.mail"} <= channel_modules
    naming = [where(m, t) for m, targets in GRAPH.items() if layer(m) != "channels"
              for t in targets if t in channel_modules]
    assert naming == []


def test_the_simulator_imports_nothing_of_the_gateway_and_only_entry_points_start_it():
    crossing = [where(m, t) for m, targets in GRAPH.items() for t in targets
                if (layer(m) == "simulator") != (layer(t) == "simulator") and layer(m) != "entry points"]
    assert crossing == []


def cycles() -> list[list[str]]:
    """Every set of modules that import one another round in a circle (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in GRAPH[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            circle = []
            while not circle or circle[-1] != module:
                circle.append(stack.pop())
            if len(circle) > 1:
                found.append(sorted(circle))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_no_modules_import_one_another_in_a_circle():
    assert cycles() == []


def test_the_layer_check_sees_imports_inside_functions_and_relative_ones():
    # gateway/cli.py starts the simulator from inside a command, and gateway/engine.py
    # imports the transitions relatively: a scan that missed either would pass anything.
    assert "simulator.app" in GRAPH["gateway.cli"]
    assert "gateway.transitions" in GRAPH["gateway.engine"]
    assert "channels" in GRAPH["gateway.engine"]


def test_every_module_the_check_reads_imports():
    # `__main__` modules run their command when imported; the others must load as they are.
    for module in sorted(m for m in MODULES if not m.endswith("__main__")):
        importlib.import_module(module)
