"""Chooses between the Rust extension and the Python reference, once per process.

The extension `_peromesh_native` is built from rust_core/ by
scripts/setup.d/20-rust-core.sh. When it cannot be imported the Python reference
serves instead (same results, slower) and ONE warning says so. Setting
`PEROMESH_NATIVE=off` forces the reference (to exercise the fallback).
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from types import ModuleType
from typing import Literal

log = logging.getLogger("server.native")

Backend = Literal["native", "python"]
NATIVE_MODULE = "_peromesh_native"


@functools.cache
def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get("PEROMESH_NATIVE", "").lower() in {"0", "off", "false", "no"}:
        reason = "disabled by PEROMESH_NATIVE"
    else:
        try:
            return importlib.import_module(NATIVE_MODULE), ""
        except ImportError as exc:
            reason = f"{type(exc).__name__}: {exc}"
    log.warning(
        "rust_core extension %s is not available (%s); using the slower Python reference "
        "implementation (build it with scripts/setup.d/20-rust-core.sh)",
        NATIVE_MODULE,
        reason,
    )
    return None, reason


def native_available() -> bool:
    """True when the Rust extension imported (first call logs the fallback warning if not)."""
    return _load()[0] is not None


def native_module() -> ModuleType:
    """The extension module; ImportError (with the reason) when it is not available.

    Typed code imports `_peromesh_native` itself after `resolve("native")` (a
    sys.modules hit) so that mypy checks calls against rust_core/_peromesh_native.pyi.
    """
    module, reason = _load()
    if module is None:
        raise ImportError(f"{NATIVE_MODULE} is not available: {reason}")
    return module


def default_backend() -> Backend:
    return "native" if native_available() else "python"


def resolve(backend: Backend | None) -> Backend:
    """None means the default; "native" raises ImportError when the extension is missing."""
    if backend is None:
        return default_backend()
    if backend == "native":
        native_module()
    elif backend != "python":
        raise ValueError(f"unknown backend {backend!r}")
    return backend
