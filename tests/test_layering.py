"""The package's layers (DESIGN.md): imports point down only, and there are no import circles."""

from __future__ import annotations

import ast
from pathlib import Path

import spikekit

ROOT = Path(spikekit.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


KNOWN = {_module_name(p) for p in ROOT.rglob("*.py")}


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """spikekit modules ``path`` imports (every import, or only module-level ones)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    me = _module_name(path)
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("spikekit")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = me.split(".")[: -node.level + (1 if path.name == "__init__.py" else 0) or None]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if mod.startswith("spikekit"):
                subs = {f"{mod}.{a.name}" for a in node.names}
                # ``from pkg import submodule`` depends on the submodule, not on the package
                out |= subs if subs & KNOWN else {mod}
    return {m for m in out if m in KNOWN and m != me}


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    return {_module_name(p): _imports(p, top_level_only) for p in ROOT.rglob("*.py")}


def test_leaves_import_nothing_above_them() -> None:
    g = _graph(top_level_only=False)
    assert g["spikekit.surrogate"] == set(), g["spikekit.surrogate"]
    assert g["spikekit.neurons._math"] <= {"spikekit.surrogate"}, g["spikekit.neurons._math"]


def test_kernels_never_import_the_neuron_modules() -> None:
    g = _graph(top_level_only=False)
    for mod, deps in g.items():
        if mod.startswith("spikekit.kernels"):
            bad = {d for d in deps if d.startswith("spikekit.") and not d.startswith("spikekit.kernels")}
            assert not bad, f"{mod} imports {bad}: kernels sit below everything but the leaves"


def test_no_import_circles() -> None:
    """No cycle among module-level imports; a package ``__init__`` importing its own
    submodules is not a circle (submodules import siblings, never their package)."""
    g = _graph(top_level_only=True)
    for mod in g:
        g[mod] = {d for d in g[mod] if not (mod.startswith(d + ".") and d in g)}  # child -> own package
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(g.get(m, ())):
            if d == m or m.startswith(d + ".") or d.startswith(m + "."):
                continue
            if state.get(d) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path[path.index(d) :], d]))
            if d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
