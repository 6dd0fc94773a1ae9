"""The contracts: buf lint clean, generated stubs current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_buf_lint_is_clean() -> None:
    done = subprocess.run([str(BIN / "buf"), "lint"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_generated_stubs_are_current() -> None:
    done = subprocess.run([sys.executable, "scripts/gen_proto.py", "--check"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
