#!/usr/bin/env bash
# Lint and type-check the project: ruff, then mypy --strict over the `peromesh`
# namespace. mypy cannot follow setuptools' editable import hook, so a tree of
# folder links (.typecheck/peromesh) mirrors the namespace for it; links to
# folders, so new modules are seen without re-running anything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
tree=.typecheck/peromesh
rm -rf .typecheck && mkdir -p "$tree"
for entry in generated/peromesh/*; do ln -s "$PWD/$entry" "$tree/$(basename "$entry")"; done
ln -s "$PWD/server" "$tree/server"
ln -s "$PWD/bridge" "$tree/bridge"
"$PY" -m ruff check server bridge tests benchmarks scripts
"$PY" -m mypy -p peromesh.server -p peromesh.bridge
