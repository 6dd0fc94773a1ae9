"""The extension is built by setup (scripts/setup.d/20-rust-core.sh): its absence is a failure, not a skip."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import server.native as native

STUB = Path(__file__).resolve().parents[2] / "rust_core" / "_peromesh_native.pyi"


def test_native_module_is_built_and_selected() -> None:
    module = importlib.import_module("_peromesh_native")  # ImportError here = setup did not build rust_core
    assert module.__version__
    assert native.native_available()
    assert native.BACKEND == "native"
    assert native.Graph.from_edges([0], [1], [1.0], 2).backend == "native"
    assert native.TextCleaner().backend == "native"


def test_stub_matches_the_module() -> None:
    """Every name and method the hand-written .pyi declares exists in the built module, and vice versa."""
    module = importlib.import_module("_peromesh_native")
    tree = ast.parse(STUB.read_text())
    declared: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            declared[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        elif isinstance(node, ast.FunctionDef):
            declared[node.name] = set()
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared[node.target.id] = set()
    public = {name for name in dir(module) if not name.startswith("_")} | {"__version__"}
    assert set(declared) == public
    for name, methods in declared.items():
        obj = getattr(module, name)
        for method in methods - {"__init__"}:
            assert hasattr(obj, method), f"{name}.{method} declared in the stub but missing"
        if isinstance(obj, type):
            actual = {m for m in vars(obj) if not m.startswith("_")}
            assert actual <= methods, f"{name} has undeclared members {actual - methods}"
