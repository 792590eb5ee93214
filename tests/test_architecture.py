"""The import graph of src/lipdub is the map in docs/architecture.md: data flows one way and nothing imports in a
circle. Every import counts: top-level, inside functions, under TYPE_CHECKING, and `importlib.import_module`
calls with a literal `lipdub.` prefix."""

from __future__ import annotations

import ast
import graphlib
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "lipdub"

# Lowest first. A module may import its own package and any package of a lower layer, never a higher one.
# The base layer (the package root with __version__, errors, settings, hashing) is shared by everyone.
# faces sits below audio: `audio.speakers` ties speech to a chosen face, while faces never needs sound.
BASE = ("lipdub", "lipdub.errors", "lipdub.settings", "lipdub.hashing")
LAYERS: list[tuple[str, ...]] = [
    BASE,
    ("lipdub.media",),
    ("lipdub.faces",),
    ("lipdub.audio",),
    ("lipdub.motion",),
    ("lipdub.engines",),
    ("lipdub.composite",),
    ("lipdub.pipeline",),
    ("lipdub.live",),
    ("lipdub.data",),
    ("lipdub.train",),
    ("lipdub.batch", "lipdub.split"),
    ("lipdub.web",),
    ("lipdub.cli",),
    ("lipdub.__main__",),
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
ORDER = " -> ".join(layer[0].removeprefix("lipdub.") for layer in LAYERS[1:-1])  # as docs/architecture.md says


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def unit(module: str) -> str:
    """The layer unit of a module: its top-level package under lipdub (`lipdub.media.audio` -> `lipdub.media`)."""
    return ".".join(module.split(".")[:2])


def _target(base: str, name: str) -> str:
    """`from base import name`: the submodule if `name` is one, else the package or module `base`."""
    return f"{base}.{name}" if f"{base}.{name}" in modules() else base


def imports_in(source: str, package: str) -> list[tuple[str, int]]:
    """(imported lipdub module, line) for every import anywhere in `source`, a module of `package`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            found += [(_target(base, a.name), node.lineno) for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.JoinedStr) and arg.values:
                arg = arg.values[0]  # f"lipdub.cli.{name}" -> its literal prefix names the package
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((arg.value.rstrip("."), node.lineno))
    return [(name, line) for name, line in found if name == "lipdub" or name.startswith("lipdub.")]


def imports_of(module: str) -> list[tuple[str, int]]:
    path = modules()[module]
    return imports_in(path.read_text(), module if path.name == "__init__.py" else module.rpartition(".")[0])


@cache
def edges() -> tuple[tuple[str, str, int], ...]:
    return tuple((m, target, line) for m in modules() for target, line in imports_of(m))


def test_every_package_has_a_place_in_the_layer_order():
    unplaced = sorted({unit(m) for m in modules()} - set(RANK))
    assert not unplaced, (f"{', '.join(unplaced)} not in the layer order: add it to LAYERS in {Path(__file__).name} "
                          "and to docs/architecture.md, below everything that imports it")


def test_no_import_runs_back_up_the_flow():
    back = [f"{src}:{line} imports {dst}: {unit(src).removeprefix('lipdub.')} (layer {RANK[unit(src)]}) may not "
            f"import {unit(dst).removeprefix('lipdub.')} (layer {RANK[unit(dst)]}), which comes after it"
            for src, dst, line in sorted(set(edges()))
            if unit(src) != unit(dst) and RANK.get(unit(dst), -1) > RANK.get(unit(src), len(LAYERS))]
    assert not back, (f"data flows one way (base -> {ORDER}, docs/architecture.md); move what both sides need "
                      "down to the lower layer:\n  " + "\n  ".join(back))


def test_every_import_names_a_module_that_exists():
    # imports inside functions run only on some paths: a renamed module must not leave one behind
    missing = [f"{src}:{line} imports {dst}, which does not exist" for src, dst, line in sorted(set(edges()))
               if dst not in modules() and not any(m.startswith(dst + ".") for m in modules())]
    assert not missing, "\n  ".join(["imports of modules that are gone:", *missing])


def test_no_import_cycles():
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for src, dst, _ in edges():
        if dst in modules() and dst != src:
            graph[src].add(dst)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle {' -> '.join(err.args[1])}: move what both need to one side") from None


def test_the_architecture_doc_states_the_enforced_order():
    assert ORDER in (ROOT / "docs" / "architecture.md").read_text(), f"docs/architecture.md must say: {ORDER}"


def test_the_checker_sees_every_kind_of_import():
    source = """
import lipdub.media
from typing import TYPE_CHECKING
from . import mel
from ..faces import select, Face
if TYPE_CHECKING:
    from lipdub.pipeline import AnimateRequest
def late():
    from lipdub.train.dataset import load_face
    importlib.import_module(f"lipdub.web.{name}")
"""
    assert sorted(imports_in(source, "lipdub.audio")) == [
        ("lipdub.audio.mel", 4), ("lipdub.faces", 5), ("lipdub.faces.select", 5), ("lipdub.media", 2),
        ("lipdub.pipeline", 7), ("lipdub.train.dataset", 9), ("lipdub.web", 10)]
