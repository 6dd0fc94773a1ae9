"""Pure-Python (NumPy) reference implementations of the native kernels.

They are the oracle the Rust extension is tested against (native == reference on
random inputs) and the fallback when the extension is not built. Each class here
has exactly the raw interface of its twin in the `_peromesh_native` module
(rust_core/_peromesh_native.pyi); callers use the facades in
`server.native` instead of either directly.
"""

from server.native.reference.graph import ReferenceGraph, reference_spread
from server.native.reference.text import ReferenceTextCleaner

__all__ = ["ReferenceGraph", "ReferenceTextCleaner", "reference_spread"]
