"""usearch's Index, imported so that ONNX Runtime can still load in the same process afterwards.

usearch's wheel links libstdc++ statically and exports its locale-facet ids as GNU unique
symbols, which bind process-wide. Loaded before the shared libstdc++, they win, and ONNX
Runtime (MiniLM, Silero VAD, Smart Turn) then segfaults on import. Loading the shared library
first, globally, makes usearch's copies bind to it (tests/memory/test_native_load_order.py).
Every import of usearch goes through here.
"""

from __future__ import annotations

import ctypes

ctypes.CDLL("libstdc++.so.6", mode=ctypes.RTLD_GLOBAL)

from usearch.index import Index  # noqa: E402  (after the preload: that order is the point)

__all__ = ["Index"]
