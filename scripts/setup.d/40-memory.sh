#!/usr/bin/env bash
# Memory embedders: the packaged MiniLM exported once to ONNX into the models dir
# (server/memory/minilm_onnx.py), so no server start or test pays for the export. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python -m server.memory.minilm_onnx >/dev/null
