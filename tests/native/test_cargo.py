"""`cargo test` over the pure Rust crate, in the mode (offline/online) the setup hook built with."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

CRATE = Path(__file__).resolve().parents[2] / "rust_core"


def test_cargo_test_passes() -> None:
    mode_file = CRATE / "target" / "cargo-mode"
    assert mode_file.exists(), "run scripts/setup.d/20-rust-core.sh first (it builds rust_core and records the mode)"
    cargo = (CRATE / "target" / "cargo-bin").read_text().strip()  # the cargo the hook built with
    env = dict(os.environ)
    env["PATH"] = f"{Path(cargo).parent}{os.pathsep}{env.get('PATH', '')}"
    if mode_file.read_text().strip() == "offline":
        env["CARGO_HOME"] = str(CRATE / "target" / "cargo-home-offline")
    # --release reuses the dependencies the hook's maturin build compiled: only the crate's tests build.
    proc = subprocess.run(
        [cargo, "test", "--release", "-p", "peromesh-core"],
        cwd=CRATE,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "test result: ok." in proc.stdout
    assert " 0 passed" not in proc.stdout.split("test result: ok.")[1].split("\n")[0]
