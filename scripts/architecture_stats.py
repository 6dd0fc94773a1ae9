"""Figures of the code's shape, for a git revision and for the work tree (issue 10).

`python scripts/architecture_stats.py [REV]` (default HEAD) prints, for REV and for the
work tree: Python modules and non-blank lines in server/ and bridge/, and the import
cycles (strongly connected components of more than one node) among modules and among
sibling packages/modules at every depth, the shape `lint-imports` holds to a DAG.

The graph is built from the source with `ast`, every import counted (inside functions
and under TYPE_CHECKING too, as grimp and import-linter count them), because older
revisions import `peromesh.server.x` / `peromesh.bridge.x` (a setup.py remap) that no
import system resolves from the plain folders; those names are mapped to `server.x` /
`bridge.x`. Where the tree imports plain `server.*` / `bridge.*`, grimp builds the same
graph independently and its module-cycle count is printed beside, as a cross-check.
Pyright's unresolved imports are counted only where `npx --offline pyright` runs.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "bridge")
REMAP = {"peromesh.server": "server", "peromesh.bridge": "bridge"}  # the old setup.py namespace


@dataclass(frozen=True)
class Stats:
    modules: Mapping[str, int]  # top package -> number of modules
    lines: Mapping[str, int]  # top package -> non-blank lines
    module_cycles: int
    largest_module_cycle: int
    sibling_cycles: int
    grimp_module_cycles: int | None  # None: grimp cannot resolve this tree's imports
    listed: tuple[tuple[str, ...], ...]  # the cycles' members (modules, then siblings), for --list
    pyright_unresolved: int | None  # None: pyright not available offline


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(root: Path) -> dict[str, Path]:
    """Module name -> file, for every .py under the top packages (caches skipped)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[module_name(root, path)] = path
    return found


def _remapped(name: str) -> str:
    for old, new in REMAP.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old):]
    return name


def _resolve(candidate: str, modules: set[str]) -> str | None:
    """The module an imported name lands on: itself, else its longest known prefix (`from m import f`)."""
    name = _remapped(candidate)
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imported_names(module: str, path: Path) -> list[str]:
    """Every name `module` imports, anywhere in its body, relative imports made absolute."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names += [f"{base}.{alias.name}" if base else alias.name for alias in node.names]
    return names


def uses_remap(names: Iterable[str]) -> bool:
    return any(_remapped(name) != name for name in names)


def strongly_connected(nodes: Iterable[str], edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's components, iteratively (no recursion limit on deep graphs)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def cycles(nodes: Iterable[str], edges: Mapping[str, set[str]]) -> list[list[str]]:
    return [c for c in strongly_connected(nodes, edges) if len(c) > 1]


def sibling_cycles(edges: Mapping[str, set[str]], modules: set[str]) -> list[list[str]]:
    """Cycles among the children of each package, at every depth (an import lifts to the two siblings)."""
    lifted: dict[str, dict[str, set[str]]] = {}  # parent -> child -> children it imports
    for source, targets in edges.items():
        for target in targets:
            a, b = source.split("."), target.split(".")
            common = 0
            while common < min(len(a), len(b)) and a[common] == b[common]:
                common += 1
            if common in (0, len(a), len(b)):  # across top packages, or into/out of an ancestor
                continue
            parent = ".".join(a[:common])
            lifted.setdefault(parent, {}).setdefault(a[common], set()).add(b[common])
    found: list[list[str]] = []
    for parent, graph in sorted(lifted.items()):
        found += [[f"{parent}.{c}" for c in sorted(cycle)] for cycle in cycles(sorted(graph), graph)]
    return found


def grimp_module_cycles(root: Path) -> int | None:
    """grimp's count of module cycles, in a child process rooted at `root`; None where grimp fails."""
    probe = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import grimp\n"
        "g = grimp.build_graph('server', 'bridge', include_external_packages=False, cache_dir=None)\n"
        "print(json.dumps({m: sorted(g.find_modules_directly_imported_by(m)) for m in g.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(root)], cwd=root, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        return None
    graph = {m: set(t) for m, t in json.loads(done.stdout).items()}
    return len(cycles(sorted(graph), graph))


def pyright_unresolved(root: Path) -> int | None:
    """reportMissingImports from pyright, if `npx --offline pyright` runs here (it needs no network)."""
    if shutil.which("npx") is None:
        return None
    venv_python = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python"
    # As the issue measures it: pyright given only the project's interpreter (what Pylance sees).
    cmd = ["npx", "--offline", "--yes", "pyright", "--pythonpath", str(venv_python), "--outputjson", *PACKAGES]
    try:
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
        report = json.loads(done.stdout)
    except (subprocess.TimeoutExpired, json.JSONDecodeError):
        return None
    return sum(1 for d in report.get("generalDiagnostics", []) if d.get("rule") == "reportMissingImports")


def stats(root: Path) -> Stats:
    files = python_files(root)
    modules = set(files)
    names = {m: imported_names(m, p) for m, p in files.items()}
    edges = {m: {t for n in ns if (t := _resolve(n, modules)) is not None and t != m} for m, ns in names.items()}
    remapped = any(uses_remap(ns) for ns in names.values())
    module_level = cycles(sorted(modules), edges)
    siblings = sibling_cycles(edges, modules)
    counts = {pkg: sum(1 for m in modules if m.split(".")[0] == pkg) for pkg in PACKAGES}
    lines = {pkg: sum(sum(1 for line in p.read_text(errors="replace").splitlines() if line.strip())
                      for m, p in files.items() if m.split(".")[0] == pkg) for pkg in PACKAGES}
    return Stats(counts, lines, len(module_level), max((len(c) for c in module_level), default=0),
                 len(siblings), None if remapped else grimp_module_cycles(root),
                 tuple(tuple(sorted(c)) for c in [*module_level, *siblings]), pyright_unresolved(root))


def extract(revision: str, into: Path) -> Path:
    """The revision's server/ and bridge/ (git archive), unpacked under `into`."""
    present = [p for p in PACKAGES if subprocess.run(["git", "cat-file", "-e", f"{revision}:{p}"], cwd=ROOT,
                                                      capture_output=True).returncode == 0]
    archive = subprocess.run(["git", "archive", "--format=tar", revision, *present], cwd=ROOT,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def table(columns: Mapping[str, Stats]) -> str:
    def shown(value: int | None, missing: str) -> str:
        return missing if value is None else str(value)

    rows: list[tuple[str, ...]] = [("", *columns)]
    for pkg in PACKAGES:
        rows.append((f"{pkg}/ modules", *(str(s.modules[pkg]) for s in columns.values())))
        rows.append((f"{pkg}/ non-blank lines", *(str(s.lines[pkg]) for s in columns.values())))
    rows.append(("module import cycles (SCC > 1)", *(str(s.module_cycles) for s in columns.values())))
    rows.append(("  largest cycle (modules)", *(str(s.largest_module_cycle) for s in columns.values())))
    rows.append(("  grimp's count (cross-check)",
                 *(shown(s.grimp_module_cycles, "n/a: peromesh.* names") for s in columns.values())))
    rows.append(("sibling-package cycles, all depths", *(str(s.sibling_cycles) for s in columns.values())))
    rows.append(("pyright unresolved imports",
                 *(shown(s.pyright_unresolved, "skipped: not offline") for s in columns.values())))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revision", nargs="?", default="HEAD", help="a git revision (default HEAD)")
    parser.add_argument("--list", action="store_true", help="also print the members of each cycle")
    args = parser.parse_args()
    short = subprocess.run(["git", "rev-parse", "--short", args.revision], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="peromesh-stats-") as tmp:
        columns = {f"{args.revision} ({short})": stats(extract(args.revision, Path(tmp))), "work tree": stats(ROOT)}
        print(table(columns))
    if args.list:
        for title, column in columns.items():
            print(f"\n{title}:")
            for members in column.listed:
                print("  " + " <-> ".join(members))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
