"""The package's layers point one way: data <- models <- training, and evaluation reads runs, data and models only.

Checked on the source (every import statement, also inside functions), so a shortcut cannot hide in a lazy import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stf_bench"
# package -> packages of stf_bench it must never import
FORBIDDEN = {
    "data": ("stf_bench.models", "stf_bench.baselines", "stf_bench.training", "stf_bench.evaluation"),
    "models": ("stf_bench.training", "stf_bench.evaluation"),
    "baselines": ("stf_bench.training", "stf_bench.evaluation"),
    "training": ("stf_bench.evaluation",),
    "evaluation": ("stf_bench.training",),
}


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_one_way(layer):
    offending = {f"{path.relative_to(PACKAGE)}: {name}" for path in (PACKAGE / layer).rglob("*.py")
                 for name in imports(path) if name.startswith(FORBIDDEN[layer])}
    assert not offending, sorted(offending)


def test_the_check_sees_a_forbidden_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from stf_bench.training.pipeline import train\n")
    assert "stf_bench.training.pipeline" in imports(module)
