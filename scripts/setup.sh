#!/usr/bin/env bash
# Set up PeroMesh on a fresh Debian 12 machine: system packages, the .venv with
# the pinned CPU torch, the project (editable), then every scripts/setup.d/*.sh
# hook in name order (models, rust_core, browsers, ...). Idempotent and quick
# when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

APT_PACKAGES=(espeak-ng sox chromium)
[ -f scripts/apt-packages.txt ] && mapfile -t -O "${#APT_PACKAGES[@]}" APT_PACKAGES < <(grep -v '^#' scripts/apt-packages.txt | grep .)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[ -x .venv/bin/python ] || python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
PIP=(.venv/bin/python -m pip install -q)
# torch first and pinned: anything else would resolve a multi-GB CUDA build.
.venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
  || "${PIP[@]}" "torch==2.13.0"
stamp=.venv/.peromesh-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  echo "setup: installing peromesh and its dependencies into .venv"
  "${PIP[@]}" -e ".[dev,models]" "torch==2.13.0"
  touch "$stamp"
fi
for hook in scripts/setup.d/*.sh; do
  [ -e "$hook" ] || continue
  echo "setup: ${hook#scripts/setup.d/}"
  bash "$hook"
done
echo "setup: done"
