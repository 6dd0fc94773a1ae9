#!/usr/bin/env bash
# rust_core: build the PyO3 extension `_peromesh_native` with maturin and install
# its wheel into .venv. Idempotent: skipped when the sources, the interpreter and
# the toolchain are unchanged and the module imports.
#
# Offline machines: crates.io is probed (python, 10 s); when unreachable, cargo
# runs with CARGO_HOME=rust_core/target/cargo-home-offline, whose config.toml is
# rust_core/.cargo/config.offline.toml: every crate comes from Debian's
# librust-*-dev sources in /usr/share/cargo/registry (scripts/apt-packages.txt).
# With crates.io reachable cargo resolves the ordinary way. The mode is recorded
# in rust_core/target/cargo-mode (and the cargo used in cargo-bin) for tests/native,
# which run `cargo test` the same way.
#   PEROMESH_CARGO_OFFLINE=1|0   force the offline / online mode
#   PEROMESH_CARGO=/path/cargo    use this cargo
#   PEROMESH_NO_RUST_CORE=1      skip (the Python reference then serves, with a warning)
set -euo pipefail
cd "$(dirname "$0")/../.."
HOOK=scripts/setup.d/20-rust-core.sh
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY=.venv/bin/python
CRATE=rust_core
TARGET=$CRATE/target
STAMP=.venv/.peromesh-rust-core

if [ "${PEROMESH_NO_RUST_CORE:-0}" = 1 ]; then
  echo "rust_core: skipped (PEROMESH_NO_RUST_CORE=1)"
  exit 0
fi

# Toolchain: $PEROMESH_CARGO, else rustup's cargo (~/.cargo/bin), else the one on
# PATH, else Debian's (apt `cargo`, rustc 1.63: enough for this crate); the first that runs.
pick_cargo() {
  local c
  for c in "${PEROMESH_CARGO:-}" "$HOME/.cargo/bin/cargo" "$(command -v cargo || true)" /usr/bin/cargo; do
    if [ -n "$c" ] && [ -x "$c" ] && "$c" --version >/dev/null 2>&1; then echo "$c"; return 0; fi
  done
  return 1
}
if ! CARGO_BIN=$(pick_cargo); then
  echo "rust_core: no working cargo (install rustup, or Debian's cargo from scripts/apt-packages.txt)" >&2
  exit 1
fi
export PATH="$(dirname "$CARGO_BIN"):$PATH"  # maturin and cargo find cargo/rustc on PATH

if ! "$PY" -m maturin --version >/dev/null 2>&1; then
  echo "rust_core: maturin is missing from .venv (it is in the dev extra of pyproject.toml)" >&2
  exit 1
fi

fingerprint() {
  {
    find "$CRATE" -path "$TARGET" -prune -o -type f \
      \( -name '*.rs' -o -name '*.toml' -o -name '*.pyi' \) -print | LC_ALL=C sort | xargs sha256sum
    sha256sum "$HOOK"  # a changed recipe rebuilds too
    "$PY" -c 'import sys; print(sys.version)'
    cargo --version
    "$PY" -m maturin --version
  } | sha256sum | cut -c1-32
}
want=$(fingerprint)
if [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] && [ -f "$TARGET/cargo-mode" ] && [ -f "$TARGET/cargo-bin" ] \
  && "$PY" -c "import _peromesh_native" 2>/dev/null; then
  echo "rust_core: up to date"
  exit 0
fi

# An old cargo (Debian's 1.65) cannot resolve today's crates.io (newer MSRVs, no
# MSRV-aware resolver): it always builds from Debian's sources.
cargo_minor=$(cargo --version | sed -E 's/^cargo 1\.([0-9]+).*/\1/')
case "${PEROMESH_CARGO_OFFLINE:-}" in
  1) mode=offline ;;
  0) mode=online ;;
  *)
    if [ "$cargo_minor" -lt 70 ] 2>/dev/null; then
      mode=offline
    elif "$PY" - <<'EOF' 2>/dev/null; then mode=online; else mode=offline; fi
import urllib.request
urllib.request.urlopen("https://index.crates.io/config.json", timeout=10).read(64)
EOF
    ;;
esac
mkdir -p "$TARGET"
# Cargo.lock is not committed: offline it pins Debian's sources (different
# checksums), online crates.io's, and lock formats differ between cargo versions;
# a lock made in another mode or by another cargo is discarded.
if [ "$(cat "$TARGET/cargo-mode" 2>/dev/null)" != "$mode" ] || [ "$(cat "$TARGET/cargo-bin" 2>/dev/null)" != "$CARGO_BIN" ]; then
  rm -f "$CRATE/Cargo.lock"
fi
if [ "$mode" = offline ]; then
  home=$PWD/$TARGET/cargo-home-offline
  mkdir -p "$home"
  cp "$CRATE/.cargo/config.offline.toml" "$home/config.toml"
  export CARGO_HOME=$home
fi
echo "$mode" > "$TARGET/cargo-mode"
echo "$CARGO_BIN" > "$TARGET/cargo-bin"

echo "rust_core: building _peromesh_native ($mode, $(cargo --version))"
rm -rf "$TARGET/wheels"
(cd "$CRATE" && "../$PY" -m maturin build --release --quiet -o target/wheels -i "../$PY")
"$PY" -m pip install -q --no-index --no-deps --force-reinstall "$TARGET"/wheels/peromesh_native-*.whl
"$PY" -c "import _peromesh_native"
fingerprint > "$STAMP"
echo "rust_core: installed _peromesh_native into .venv"
