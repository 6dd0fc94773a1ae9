#!/usr/bin/env bash
# Lint and type-check the project: ruff, mypy --strict over the `server` and `bridge`
# packages (they resolve from the editable install's plain .pth, no link tree needed),
# the import-layer contracts (import-linter), the lock against pyproject, and buf.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -m ruff check server bridge tests benchmarks scripts
"$PY" -m mypy -p server -p bridge
"$(dirname "$PY")/lint-imports" --no-cache  # the layers and no import cycles ([tool.importlinter] in pyproject.toml)
"$PY" scripts/lock.py --check
