#!/usr/bin/env bash
# Run the whole test suite on this machine: set up (idempotent), make sure the
# local PostgreSQL and Redis are up, lint the contracts and check them against the last
# release, lint and type-check the code, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/services.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
.venv/bin/buf lint
# Contracts guarded: no FILE-level breaking change against the last released contracts
# (proto/released.binpb; a release refreshes it with `.venv/bin/buf build -o proto/released.binpb`).
.venv/bin/buf breaking --against proto/released.binpb
scripts/check.sh
exec .venv/bin/python -m pytest "$@"
