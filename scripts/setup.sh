#!/usr/bin/env bash
# Set up PeroMesh on a fresh Debian 12 machine: system packages, the .venv from
# the hashed lock (requirements/main.lock), the project (editable), then every scripts/setup.d/*.sh
# hook in name order (models, rust_core, browsers, ...). Idempotent and quick
# when nothing changed.
#   PEROMESH_NO_CHROMIUM=1   skip chromium, which only the console screenshot tests use
#                            (a serving machine or image: deploy/Dockerfile)
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

APT_PACKAGES=(espeak-ng sox)
[ "${PEROMESH_NO_CHROMIUM:-0}" = 1 ] || APT_PACKAGES+=(chromium)
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
# Every package from the hashed locks in requirements/ (scripts/lock.py writes and checks them),
# without resolving anything: a fresh machine next month installs exactly what was tested.
# The project itself goes in last, editable: a plain .pth of the repository root and generated/.
stamp=.venv/.peromesh-installed
want=$(cat pyproject.toml requirements/main.lock requirements/main-nodeps.lock | sha256sum | cut -c1-32)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the locked dependencies into .venv (requirements/main.lock)"
  .venv/bin/python -m pip install -q --require-hashes --no-deps -r requirements/main.lock
  .venv/bin/python -m pip install -q --require-hashes --no-deps -r requirements/main-nodeps.lock
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi
for hook in scripts/setup.d/*.sh; do
  [ -e "$hook" ] || continue
  echo "setup: ${hook#scripts/setup.d/}"
  bash "$hook"
done
echo "setup: done"
