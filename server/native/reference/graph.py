"""Reference relation graph and spreading activation (NumPy), the oracle for rust_core.

The algorithm is specified in `server.native.graph` (module docstring);
this file follows it step by step, in the same floating-point operation order as
the Rust kernel (rust_core/core/src/spread.rs), so both give bit-identical f64
results. Keep the two in lock-step: any change here needs the same change there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

MAX_NODES = 2**32 - 1


def check_num_nodes(num_nodes: int) -> None:
    """Node ids are u32 in the native graph; the reference enforces the same bound."""
    if not 0 <= num_nodes <= MAX_NODES:
        raise ValueError(f"num_nodes must be in [0, {MAX_NODES}], got {num_nodes}")


def check_edges(src: I64, dst: I64, weight: F64, num_nodes: int) -> F32:
    """Validate one batch of edges; return the weights rounded to float32 (the stored precision)."""
    if not len(src) == len(dst) == len(weight):
        raise ValueError(f"src, dst and weight differ in length: {len(src)}, {len(dst)}, {len(weight)}")
    for name, ids in (("src", src), ("dst", dst)):
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= num_nodes):
            raise ValueError(f"{name} holds a node id outside [0, {num_nodes})")
    if len(weight) and not (np.isfinite(weight).all() and (weight >= 0).all()):
        raise ValueError("weights must be finite and >= 0")
    with np.errstate(over="ignore"):
        w32 = weight.astype(np.float32)
    if not np.isfinite(w32).all():
        raise ValueError("a weight overflows float32")
    return w32


def _mirror(u: I64, v: I64, w: F32, directed: bool) -> tuple[I64, I64, F32, I64]:
    """Drop self-loops; add the reverse arc of every edge unless directed. Also returns each arc's batch index."""
    keep = u != v
    pos = np.arange(len(u), dtype=np.int64)[keep]
    u, v, w = u[keep], v[keep], w[keep]
    if directed:
        return u, v, w, pos
    return (np.concatenate((u, v)), np.concatenate((v, u)), np.concatenate((w, w)), np.concatenate((pos, pos)))


def _first_of_groups(u: I64, v: I64) -> npt.NDArray[np.bool_]:
    first = np.ones(len(u), dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
    return first


class ReferenceGraph:
    """CSR adjacency: arcs of node u are `neighbors[offsets[u]:offsets[u+1]]`, sorted by (weight desc, id asc)."""

    def __init__(self, offsets: I64, neighbors: I64, weights: F32, num_nodes: int, directed: bool) -> None:
        self.offsets = offsets
        self.neighbors = neighbors
        self.weights = weights
        self._num_nodes = num_nodes
        self._directed = directed

    @staticmethod
    def from_edges(src: I64, dst: I64, weight: F64, num_nodes: int, directed: bool) -> ReferenceGraph:
        check_num_nodes(num_nodes)
        w32 = check_edges(src, dst, weight, num_nodes)
        u, v, w, _ = _mirror(src, dst, w32, directed)
        # Parallel edges merge into one arc carrying the largest weight.
        order = np.lexsort((-w, v, u))
        u, v, w = u[order], v[order], w[order]
        first = _first_of_groups(u, v)
        return ReferenceGraph._build(u[first], v[first], w[first], num_nodes, directed)

    def with_updates(self, src: I64, dst: I64, weight: F64, num_nodes: int) -> ReferenceGraph:
        check_num_nodes(num_nodes)
        if num_nodes < self._num_nodes:
            raise ValueError(f"num_nodes may only grow: {num_nodes} < {self._num_nodes}")
        w32 = check_edges(src, dst, weight, num_nodes)
        u, v, w, pos = _mirror(src, dst, w32, self._directed)
        # Within the batch the last entry for an arc wins.
        order = np.lexsort((-pos, v, u))
        u, v, w = u[order], v[order], w[order]
        first = _first_of_groups(u, v)
        u, v, w = u[first], v[first], w[first]
        eu, ev, ew = self.arcs()
        ekey = (eu.astype(np.uint64) << np.uint64(32)) | ev.astype(np.uint64)
        ukey = (u.astype(np.uint64) << np.uint64(32)) | v.astype(np.uint64)
        kept = ~np.isin(ekey, ukey)
        return ReferenceGraph._build(
            np.concatenate((eu[kept], u)),
            np.concatenate((ev[kept], v)),
            np.concatenate((ew[kept].astype(np.float32), w)),
            num_nodes,
            self._directed,
        )

    @staticmethod
    def _build(u: I64, v: I64, w: F32, num_nodes: int, directed: bool) -> ReferenceGraph:
        """Arcs must be unique per (u, v); zero-weight arcs are dropped."""
        live = w > 0
        u, v, w = u[live], v[live], w[live]
        order = np.lexsort((v, -w, u))
        offsets = np.zeros(num_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(u, minlength=num_nodes), out=offsets[1:])
        return ReferenceGraph(offsets, v[order].astype(np.int64), w[order].astype(np.float32), num_nodes, directed)

    @property
    def num_nodes(self) -> int:
        return self._num_nodes

    @property
    def num_arcs(self) -> int:
        return len(self.neighbors)

    @property
    def directed(self) -> bool:
        return self._directed

    def arcs(self) -> tuple[I64, I64, F64]:
        src = np.repeat(np.arange(self._num_nodes, dtype=np.int64), np.diff(self.offsets))
        return src, self.neighbors.copy(), self.weights.astype(np.float64)

    def neighbors_of(self, node: int) -> list[tuple[int, float]]:
        if not 0 <= node < self._num_nodes:
            raise ValueError(f"node {node} outside [0, {self._num_nodes})")
        lo, hi = int(self.offsets[node]), int(self.offsets[node + 1])
        return list(zip(self.neighbors[lo:hi].tolist(), self.weights[lo:hi].astype(np.float64).tolist(), strict=True))


def check_spread_params(
    steps: int,
    decay: float,
    threshold: float,
    max_active_per_step: int | None,
    max_fanout_per_node: int | None,
    energy_cap: float | None,
    top_k: int,
) -> None:
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not (math.isfinite(decay) and decay >= 0):
        raise ValueError(f"decay must be finite and >= 0, got {decay}")
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be finite and >= 0, got {threshold}")
    if max_active_per_step is not None and max_active_per_step < 1:
        raise ValueError(f"max_active_per_step must be >= 1 or None, got {max_active_per_step}")
    if max_fanout_per_node is not None and max_fanout_per_node < 1:
        raise ValueError(f"max_fanout_per_node must be >= 1 or None, got {max_fanout_per_node}")
    if energy_cap is not None and not energy_cap > 0:
        raise ValueError(f"energy_cap must be > 0 or None, got {energy_cap}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")


def reference_spread(
    graph: ReferenceGraph,
    seeds: Sequence[tuple[int, float]],
    steps: int,
    decay: float,
    threshold: float,
    max_active_per_step: int | None,
    max_fanout_per_node: int | None,
    energy_cap: float | None,
    top_k: int,
    include_seeds: bool,
) -> list[tuple[int, float]]:
    check_spread_params(steps, decay, threshold, max_active_per_step, max_fanout_per_node, energy_cap, top_k)
    n = graph.num_nodes
    cap = math.inf if energy_cap is None else float(energy_cap)
    limit = max_active_per_step

    seed_energy: dict[int, float] = {}
    for node, energy in seeds:
        if node < 0:
            raise ValueError(f"seed node ids must be >= 0, got {node}")
        if not (math.isfinite(energy) and energy >= 0):
            raise ValueError(f"seed energies must be finite and >= 0, got {energy}")
        seed_energy[node] = seed_energy.get(node, 0.0) + energy

    act = np.zeros(n, dtype=np.float64)
    outside: dict[int, float] = {}  # seeds beyond the graph: isolated nodes
    frontier: list[tuple[int, float]] = []
    for node, total in seed_energy.items():
        energy = min(total, cap)
        if node >= n:
            outside[node] = energy
            continue
        act[node] = energy
        if energy > 0 and energy >= threshold:
            frontier.append((node, energy))
    frontier.sort(key=lambda t: (-t[1], t[0]))
    frontier = sorted(frontier[:limit])  # top-A by energy, processed in id order

    offsets, neighbors, weights = graph.offsets, graph.neighbors, graph.weights
    for _ in range(steps):
        if not frontier or decay == 0:
            break
        ids = np.fromiter((f[0] for f in frontier), dtype=np.int64, count=len(frontier))
        pulses = np.fromiter((f[1] for f in frontier), dtype=np.float64, count=len(frontier))
        starts = offsets[ids]
        degrees = offsets[ids + 1] - starts
        if max_fanout_per_node is not None:
            degrees = np.minimum(degrees, max_fanout_per_node)
        total = int(degrees.sum())
        if total == 0:
            break
        # Arc indices of every frontier node's first `degree` arcs, frontier order then arc order.
        run_starts = np.cumsum(degrees) - degrees
        arc = np.repeat(starts - run_starts, degrees) + np.arange(total, dtype=np.int64)
        targets = neighbors[arc]
        contrib = np.repeat(pulses * decay, degrees) * weights[arc].astype(np.float64)
        touched, inverse = np.unique(targets, return_inverse=True)
        incoming = np.zeros(len(touched), dtype=np.float64)
        np.add.at(incoming, inverse, contrib)  # sequential, in traversal order: same sums as the kernel
        live = (incoming > 0) & (incoming >= threshold)
        nodes = touched[live]
        pulse = np.minimum(incoming[live], cap)
        act[nodes] = np.minimum(act[nodes] + pulse, cap)
        order = np.sort(np.lexsort((nodes, -pulse))[:limit])  # nodes ascend: top-A in id order
        frontier = list(zip(nodes[order].tolist(), pulse[order].tolist(), strict=True))

    inside = np.flatnonzero(act > 0)
    ranked = list(zip(inside.tolist(), act[inside].tolist(), strict=True))
    ranked += [(node, energy) for node, energy in outside.items() if energy > 0]
    if not include_seeds:
        ranked = [(node, energy) for node, energy in ranked if node not in seed_energy]
    ranked.sort(key=lambda t: (-t[1], t[0]))
    return ranked[:top_k]
