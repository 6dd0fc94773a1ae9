"""The association graph used for spreading activation (server.native).

The relation table is the truth; this keeps a CSR graph built from it in
memory. Changes are queued and patched in (`with_updates`) lazily before the
next spread, so ingesting a turn costs no graph work on the write path. Node
ids are memory ids. Parallel relations of different kinds are summed (capped at
1) per pair before they reach the graph.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import numpy as np

from server import native

log = logging.getLogger(__name__)


class AssociationGraph:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._graph: native.Graph | None = None
        self._num_nodes = 0
        self._pending: dict[tuple[int, int], float] = {}

    def load(self, edges: Iterable[tuple[int, int, float]], max_id: int) -> None:
        """Replace the graph with `edges` (a, b, weight); blocking (call in a thread)."""
        src: list[int] = []
        dst: list[int] = []
        wts: list[float] = []
        for a, b, w in edges:
            src.append(a)
            dst.append(b)
            wts.append(w)
        num_nodes = max([max_id + 1, *(max(a, b) + 1 for a, b in zip(src, dst, strict=True))], default=1)
        graph = native.Graph.from_edges(np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64),
                                        np.asarray(wts, dtype=np.float64), _capacity(num_nodes))
        with self._lock:
            self._graph = graph
            self._num_nodes = graph.num_nodes
            self._pending.clear()

    def set_weight(self, a: int, b: int, weight: float) -> None:
        """Queue the pair's new total weight (applied before the next spread)."""
        with self._lock:
            self._pending[(min(a, b), max(a, b))] = weight

    def remove_node(self, node: int, neighbours: Iterable[int]) -> None:
        for other in neighbours:
            self.set_weight(node, other, 0.0)

    def _current(self) -> native.Graph | None:
        with self._lock:
            if self._graph is None:
                return None
            if self._pending:
                pairs = list(self._pending.items())
                self._pending.clear()
                top = max(max(a, b) for (a, b), _ in pairs) + 1
                num_nodes = max(self._num_nodes, _capacity(top) if top > self._num_nodes else 0)
                src = np.asarray([a for (a, _), _ in pairs], dtype=np.int64)
                dst = np.asarray([b for (_, b), _ in pairs], dtype=np.int64)
                wts = np.asarray([w for _, w in pairs], dtype=np.float64)
                self._graph = self._graph.with_updates(src, dst, wts, num_nodes=num_nodes)
                self._num_nodes = self._graph.num_nodes
            return self._graph

    @property
    def edges(self) -> int:
        graph = self._graph
        return 0 if graph is None else graph.num_arcs // 2

    def spread(self, seeds: dict[int, float], steps: int, decay: float, threshold: float,
               max_active: int, max_fanout: int, energy_cap: float, top_k: int) -> dict[int, float]:
        """Energy that reached each node from the seeds (a seed's own starting energy excluded)."""
        graph = self._current()
        if graph is None or not seeds or steps <= 0 or graph.num_arcs == 0:
            return {}
        result = native.spread(graph, list(seeds.items()), steps=steps, decay=decay, threshold=threshold,
                               max_active_per_step=max_active, max_fanout_per_node=max_fanout,
                               energy_cap=energy_cap, top_k=top_k, include_seeds=True)
        out: dict[int, float] = {}
        for node, energy in result:
            received = energy - min(seeds.get(node, 0.0), energy_cap)
            if received > 1e-9:
                out[int(node)] = float(received)
        return out


def _capacity(num_nodes: int) -> int:
    """Room to grow: node count rounded up, so most new memories need no resize."""
    return max(1024, int(num_nodes * 1.25) + 1)
