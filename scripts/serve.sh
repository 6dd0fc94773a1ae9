#!/usr/bin/env bash
# Set up (idempotent) and start the whole mesh in one process with the embedded
# defaults: local Qwen2.5 0.5B (converted once into the data dir, with progress),
# espeak-ng speech, SQLite in ~/.peromesh. Extra arguments go to `peromesh serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/peromesh serve "$@"
