"""Imports go only downward: the floors of DESIGN.md, checked on the import graph of speechrep/.

Every ``import speechrep.X`` / ``from speechrep.X import`` in a module of package (or top-level
module) A is an edge A -> X; an edge is allowed when X sits on a lower floor than A (imports
inside one package are free). Imports inside functions count: a lazy import is still a
dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "speechrep"

#: Top to bottom; a unit imports only from units on floors below its own.
FLOORS: list[tuple[str, ...]] = [
    ("__main__",),
    ("cli",),
    ("ablation",),  # a job built on units
    ("convert", "units", "extract", "report", "sidetasks", "package_knn"),  # user-level jobs
    ("convert_knn",),  # zero-shot conversion, which convert dispatches to
    ("eval",),  # scores: loads trained models through train.checkpoint
    ("train",),  # the Trainer, checkpoints
    ("vocoder",),  # vocoders are models with a mel-to-wave interface
    ("models",),  # nn.Modules and the registry
    ("objectives", "estimators"),  # losses, gradient estimators
    ("data",),  # data directories, corpora, the data-dir drivers of features
    ("features",),  # pure numpy + numba
    ("config",),
    ("utils",),
    ("errors", "__init__"),
]

def _floor(unit: str) -> int:
    for i, names in enumerate(FLOORS):
        if unit in names:
            return i
    raise AssertionError(f"speechrep.{unit} has no floor in FLOORS: add it to the table")


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_unit(root: Path, name: str) -> bool:
    return (root / name).is_dir() or (root / f"{name}.py").is_file()


def import_edges(root: Path = ROOT) -> dict[tuple[str, str], list[str]]:
    """``{(unit, imported unit): ["file:line", ...]}`` over every module under ``root``."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        src = parts[1] if len(parts) > 1 else "__init__"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("speechrep"):
                if node.module == "speechrep":  # `from speechrep import x`: a subpackage, or a name of __init__
                    targets = [f"speechrep.{a.name}" if _is_unit(root, a.name) else "speechrep" for a in node.names]
                else:
                    targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == "speechrep"]
            for target in targets:
                dst = _unit(target)
                if dst != src:
                    edges.setdefault((src, dst), []).append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return edges


def upward_edges(edges: dict[tuple[str, str], list[str]]) -> dict[tuple[str, str], list[str]]:
    return {e: where for e, where in edges.items() if _floor(e[1]) <= _floor(e[0])}


def test_no_upward_import():
    up = upward_edges(import_edges())
    assert not up, "upward imports (move the code down, or pass the object in): " + "; ".join(
        f"{a} -> {b} at {', '.join(w)}" for (a, b), w in sorted(up.items()))


@pytest.mark.parametrize("src, dst, ok", [("models", "train", False), ("train", "models", True), ("features", "features", True)])
def test_the_checker_sees_upward_edges(tmp_path, src, dst, ok):
    pkg = tmp_path / "speechrep"
    for unit in {src, dst}:
        (pkg / unit).mkdir(parents=True, exist_ok=True)
        (pkg / unit / "__init__.py").write_text("")
    (pkg / src / "mod.py").write_text(f"def f():\n    from speechrep.{dst}.thing import x\n")
    up = upward_edges(import_edges(pkg))
    assert ((src, dst) in up) == (not ok and src != dst)
