"""rust_core kernels for the memory service: spreading activation and text cleaning.

Public API (details in the submodules' docstrings):

- `Graph.from_edges(src, dst, weight, num_nodes, *, directed=False)` -> Graph;
  `graph.with_updates(src, dst, weight, *, num_nodes=None)` -> Graph
- `spread(graph, seeds, *, steps, decay, threshold, max_active_per_step,
  max_fanout_per_node, energy_cap, top_k, include_seeds)` -> [(node, activation)]
- `TextCleaner(sensitive_words, mask="*", *, min_base64_len=64, keep_newlines=True)`,
  `.clean(text)` -> str

Everything runs on the Rust extension `_peromesh_native` when it is built (see
rust_core/README.md), else on the NumPy reference with one warning in the log;
`BACKEND` says which. Results are identical either way.
"""

from server.native.backend import Backend, default_backend, native_available
from server.native.graph import Graph, spread
from server.native.text import TextCleaner

BACKEND: Backend = default_backend()

__all__ = ["BACKEND", "Backend", "Graph", "TextCleaner", "native_available", "spread"]
