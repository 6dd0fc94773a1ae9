#!/usr/bin/env bash
# Run the whole test suite on this machine: set up (idempotent), make sure the
# local PostgreSQL and Redis are up, check generated stubs and lint, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/services.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
.venv/bin/buf lint
scripts/check.sh
exec .venv/bin/python -m pytest "$@"
