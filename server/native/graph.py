"""Relation graph and spreading activation: the memory service's associative channel.

Why: recall finds a few memories by meaning (the seeds); spreading activation then
walks the relation graph from them to surface memories that are *related* to the
hits without being similar to the query, scored by how strongly they connect.

Graph
-----
`Graph.from_edges(src, dst, weight, num_nodes)` builds a compact CSR adjacency,
once, from relation triples. Node ids are `0 <= id < num_nodes` (< 2**32).
- Undirected by default: each edge (a, b) gives the arcs a->b and b->a.
- Self-loops are ignored. Weights must be finite and >= 0 (else ValueError);
  they are stored as float32. Parallel edges (also (a, b) next to (b, a) when
  undirected) merge into one arc with the LARGEST weight. Zero-weight arcs are dropped.
- Each node's arcs are kept sorted by (weight desc, neighbour id asc).
Graphs are immutable and safe to share between threads. When relations change,
`graph.with_updates(src, dst, weight, num_nodes=...)` returns a new graph in which
each listed edge gets exactly the given weight (0 removes it; within one batch the
last entry for an edge wins); the node count may grow. The native graph shares its
CSR with the old version and keeps patched nodes in a small overlay, so a patch
costs about the size of the change (tens of microseconds for a few edges on a
million-edge graph); big batches and a grown overlay are folded into a fresh CSR
(O(arcs), tens of ms per million edges, like `from_edges`).

Spreading activation (`spread`)
-------------------------------
All energies are float64; `cap` is `energy_cap` (None = +inf); "top-A" means: sort
by (energy desc, node id asc) and keep the first `max_active_per_step` (None = all).

1. Seeds: energies of repeated seed ids are summed in the given order, then capped:
   act[s] = min(sum, cap). Seed ids >= num_nodes are isolated nodes (they spread
   nothing). The first frontier is top-A of the in-graph seeds with
   act[s] > 0 and act[s] >= threshold, each with pulse p = act[s].
2. Each step (at most `steps`; stops early when the frontier is empty or decay == 0):
   for each frontier node u in ascending id order, let d = p_u * decay; for each of u's
   first `max_fanout_per_node` arcs (u -> v, w) in arc order (highest weights;
   None = all): incoming[v] += d * float64(w), summed from 0.0 in exactly this order.
   Then every v with incoming[v] > 0 and incoming[v] >= threshold is activated:
   pulse p_v = min(incoming[v], cap); act[v] = min(act[v] + p_v, cap). Smaller
   incoming energy is discarded. The next frontier is top-A of the activated nodes
   by pulse. Energy may flow back into seeds and earlier nodes; only the pulse
   received in a step is spread on in the next one.
3. Result: the nodes with act > 0, EXCLUDING the seeds unless `include_seeds`
   (then seeds carry their own energy plus what flowed back to them), sorted by
   (act desc, node id asc), first `top_k`, as (node, act) pairs.

The Rust kernel and the NumPy reference perform the same float operations in the
same order, so their results are identical (tests compare them exactly).
Parameter errors (steps < 0, decay/threshold negative or not finite, caps < 1,
energy_cap <= 0, top_k < 0, negative seed ids, negative or non-finite seed
energies) raise ValueError.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from server.native.backend import Backend, resolve
from server.native.reference.graph import ReferenceGraph, reference_spread

if TYPE_CHECKING:
    import _peromesh_native

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
_I64_MAX = 2**63 - 1


class Graph:
    """An immutable relation graph bound to one backend ("native" Rust or "python" reference)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: ReferenceGraph | _peromesh_native.Graph) -> None:
        """Internal: use `Graph.from_edges`."""
        self._raw = raw

    @classmethod
    def from_edges(
        cls,
        src: npt.ArrayLike,
        dst: npt.ArrayLike,
        weight: npt.ArrayLike,
        num_nodes: int,
        *,
        directed: bool = False,
        backend: Backend | None = None,
    ) -> Graph:
        """Build from parallel arrays of edge endpoints and weights (see the module docstring)."""
        s, d, w = _ids("src", src), _ids("dst", dst), _weights(weight)
        if resolve(backend) == "native":
            import _peromesh_native

            return cls(_peromesh_native.Graph.from_edges(s, d, w, int(num_nodes), bool(directed)))
        return cls(ReferenceGraph.from_edges(s, d, w, int(num_nodes), bool(directed)))

    def with_updates(
        self, src: npt.ArrayLike, dst: npt.ArrayLike, weight: npt.ArrayLike, *, num_nodes: int | None = None
    ) -> Graph:
        """A new graph where each given edge has exactly the given weight (0 deletes it)."""
        n = self.num_nodes if num_nodes is None else int(num_nodes)
        return Graph(self._raw.with_updates(_ids("src", src), _ids("dst", dst), _weights(weight), n))

    @property
    def backend(self) -> Backend:
        return "python" if isinstance(self._raw, ReferenceGraph) else "native"

    @property
    def num_nodes(self) -> int:
        return self._raw.num_nodes

    @property
    def num_arcs(self) -> int:
        """Stored directed arcs: twice the number of distinct edges when undirected."""
        return self._raw.num_arcs

    @property
    def directed(self) -> bool:
        return self._raw.directed

    def arcs(self) -> tuple[I64, I64, F64]:
        """All arcs as (src, dst, weight) arrays, by source node then (weight desc, dst asc)."""
        if isinstance(self._raw, ReferenceGraph):
            return self._raw.arcs()
        n = self._raw.num_arcs
        src, dst, weight = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.float64)
        self._raw.arcs_into(src, dst, weight)
        return src, dst, weight

    def neighbors(self, node: int) -> list[tuple[int, float]]:
        """(neighbour, weight) arcs of `node` in spreading order; ValueError if outside the graph."""
        return self._raw.neighbors_of(int(node))

    def __repr__(self) -> str:
        kind = "directed" if self.directed else "undirected"
        return f"Graph({self.num_nodes} nodes, {self.num_arcs} arcs, {kind}, {self.backend})"


def spread(
    graph: Graph,
    seeds: Iterable[tuple[int, float]],
    *,
    steps: int = 2,
    decay: float = 0.7,
    threshold: float = 0.01,
    max_active_per_step: int | None = 10_000,
    max_fanout_per_node: int | None = None,
    energy_cap: float | None = None,
    top_k: int = 50,
    include_seeds: bool = False,
) -> list[tuple[int, float]]:
    """Spread energy from `seeds` [(node, energy)] over `graph`; returns [(node, activation)], best first.

    Exact semantics in the module docstring. The native kernel releases the GIL,
    so concurrent calls from threads run in parallel.
    """
    seed_list = [(int(node), float(energy)) for node, energy in seeds]
    for node, _ in seed_list:
        if not 0 <= node <= _I64_MAX:
            raise ValueError(f"seed node ids must be in [0, 2**63), got {node}")
    args = (
        int(steps),
        float(decay),
        float(threshold),
        None if max_active_per_step is None else int(max_active_per_step),
        None if max_fanout_per_node is None else int(max_fanout_per_node),
        None if energy_cap is None else float(energy_cap),
        int(top_k),
        bool(include_seeds),
    )
    raw = graph._raw
    if isinstance(raw, ReferenceGraph):
        return reference_spread(raw, seed_list, *args)
    import _peromesh_native

    return _peromesh_native.spread(raw, seed_list, *args)


def _ids(name: str, values: npt.ArrayLike) -> I64:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and int(arr.max()) > _I64_MAX:
        raise ValueError(f"{name} holds a node id >= 2**63")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _weights(values: npt.ArrayLike) -> F64:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"weight must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.float64)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"weight must hold numbers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float64)
