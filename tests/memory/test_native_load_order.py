"""usearch first, then ONNX Runtime, in one fresh process: the order a memory server imports them."""

from __future__ import annotations

import subprocess
import sys


def test_onnxruntime_loads_after_the_vector_index_in_a_fresh_process() -> None:
    code = "import server.memory.vector_index, onnxruntime; print(onnxruntime.get_device())"  # usearch first
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.strip() == "CPU"
