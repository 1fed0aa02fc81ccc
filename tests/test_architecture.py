"""The layer rule (README, *Architecture*): each module imports only from its own layer or those
below, the graph has no cycles, and no private name is imported across packages.

The graph is read from the source with ``ast``, so imports inside functions count too: a lazy
import hides a cycle from Python, not from the next reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# import name → folder (pyproject.toml maps the top-level folders into the rsgpt4v namespace)
PACKAGES = {
    "rsgpt4v": REPO / "rsgpt4v",
    "rsgpt4v.converters": REPO / "converters",
    "rsgpt4v.prompts": REPO / "prompts",
    "rsgpt4v.finetune": REPO / "finetune",
}


# The layers of the README's *Architecture* section, bottom first; a module belongs to the
# longest prefix listed (``rsgpt4v`` alone is the package's own ``__init__``).
LAYERS = (
    (
        "rsgpt4v",
        "rsgpt4v.errors",
        "rsgpt4v.schema",
        "rsgpt4v.jsonfiles",
        "rsgpt4v.atomic",
        "rsgpt4v.problems",
        "rsgpt4v.paths",
        "rsgpt4v.collector",
        "rsgpt4v.geometry",
        "rsgpt4v.boxfmt",
        "rsgpt4v.raster",
        "rsgpt4v.gsd",
        "rsgpt4v.completeness",
        "rsgpt4v.label_facts",
        "rsgpt4v.settings",
        "rsgpt4v.prompts",
    ),
    ("rsgpt4v.engines",),
    ("rsgpt4v.families",),
    (
        "rsgpt4v.converters",
        "rsgpt4v.convert",
        "rsgpt4v.convert_settings",
        "rsgpt4v.sample",
        "rsgpt4v.tile_windows",
        "rsgpt4v.tiling",
        "rsgpt4v.tile_settings",
        "rsgpt4v.coco_export",
        "rsgpt4v.exporters",
        "rsgpt4v.export",
        "rsgpt4v.export_settings",
        "rsgpt4v.vocabulary",
    ),
    ("rsgpt4v.instruct",),
    ("rsgpt4v.validate", "rsgpt4v.report"),
    ("rsgpt4v.finetune",),
    ("rsgpt4v.evaluate",),
    ("rsgpt4v.demo", "rsgpt4v.cli", "rsgpt4v.cli_options"),
)


def _layer(module: str) -> int:
    found = [
        (len(prefix), number)
        for number, layer in enumerate(LAYERS)
        for prefix in layer
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(found)[1]


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports (the deepest module each import statement names)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_import_graph_has_no_cycles() -> None:
    modules = _modules()
    assert "rsgpt4v.instruct.rules.common" in modules and "rsgpt4v.finetune.train" in modules
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert _cycles(graph) == []


def test_each_module_imports_only_its_own_layer_or_those_below() -> None:
    modules = _modules()
    upward = [
        f"{name} (layer {_layer(name) + 1}) imports {target} (layer {_layer(target) + 1})"
        for name, path in sorted(modules.items())
        for target in sorted(_imports(name, path, modules))
        if _layer(target) > _layer(name)
    ]
    assert upward == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_a_private_name_from_another_package() -> None:
    offences = []
    for name, path in _modules().items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(
                "rsgpt4v"
            ):
                continue
            source_package = node.module.rpartition(".")[0] if node.level == 0 else package
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and source_package != package and node.module != package:
                    offences.append(f"{path.relative_to(REPO)}: {node.module}.{alias.name}")
    assert offences == []
