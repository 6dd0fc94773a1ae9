"""Without the extension the reference serves, and exactly one warning says so."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import logging
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
import server.native as native
assert native.BACKEND == "python", native.BACKEND
g = native.Graph.from_edges([0, 1], [1, 2], [1.0, 0.5], 3)
assert g.backend == "python"
assert native.spread(g, [(0, 1.0)], steps=2, threshold=0.0) == [(1, 0.7), (2, 0.7 * 0.7 * 0.5)]
assert native.TextCleaner(["x"]).clean(" a\\x00x ") == "a*"
try:
    native.Graph.from_edges([0], [1], [1.0], 2, backend="native")
except ImportError:
    pass
else:
    raise AssertionError("backend='native' must fail without the extension")
print("ok")
"""


@pytest.mark.parametrize("how", ["env", "missing"])
def test_reference_fallback_warns_once(how: str) -> None:
    env = dict(os.environ)
    if how == "env":
        env["PEROMESH_NATIVE"] = "off"
        code = SCRIPT
    else:  # simulate an unbuilt extension: make its import fail
        code = "import sys; sys.modules['_peromesh_native'] = None\n" + SCRIPT
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING server.native")]
    assert len(warnings) == 1, proc.stderr
    assert "Python reference" in warnings[0]
