"""Where converted and assembled models live, shared by every server of one user.

Models that ship in packages but are not loadable as they are (Whisper's split
parts, MiniLM's ONNX export) are prepared once into this folder and reused by
every later start and every test's fresh data dir, so no start pays twice.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_models_dir() -> Path:
    """`$PEROMESH_MODELS_DIR`, else `<data dir>/models` (data dir: `$PEROMESH_DATA_DIR` or ~/.peromesh)."""
    explicit = os.environ.get("PEROMESH_MODELS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    data_dir = Path(os.environ.get("PEROMESH_DATA_DIR", str(Path.home() / ".peromesh"))).expanduser()
    return data_dir / "models"
