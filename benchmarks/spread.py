"""Spreading-activation benchmark: Rust kernel vs the NumPy reference (issue 4).

Default workload: 200,000 nodes, 1,000,000 random undirected edges (uniform
endpoints, weights uniform in [0, 1)), 20 random seeds with energy 1.0, decay 0.7,
threshold 0.01, at most 10,000 active nodes per step, top 50; 1, 3 and 11 steps.
`--edges-file` (CSV `src,dst,weight`, undirected, optional header) and
`--seeds-file` (CSV `node,energy`) run it on an outside graph instead.

Prints (stdout) one JSON line per (impl, steps) with `impl`, `steps`,
`median_ms`, `p99_ms` (latency of one `spread(...)` call from Python,
conversions included), plus context (reps, result size, whether native ==
reference). Graph build times go to stderr as `"phase": "build"` lines.

    .venv/bin/python benchmarks/spread.py                       # native 300 reps, reference 15
    .venv/bin/python benchmarks/spread.py --impl native --reps 2000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from server.native import Backend, Graph, native_available, spread


def read_csv(path: Path, columns: int) -> npt.NDArray[np.float64]:
    with path.open() as f:
        first = f.readline()
    try:
        [float(x) for x in first.strip().split(",")]
        skip = 0
    except ValueError:
        skip = 1  # a header line
    data = np.loadtxt(path, delimiter=",", skiprows=skip, dtype=np.float64, ndmin=2)
    if data.shape[1] != columns:
        raise SystemExit(f"{path}: expected {columns} columns, got {data.shape[1]}")
    return data


def workload(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, list[tuple[int, float]]]:
    rng = np.random.default_rng(args.seed)
    if args.edges_file:
        edges = read_csv(Path(args.edges_file), 3)
        src, dst, weight = edges[:, 0].astype(np.int64), edges[:, 1].astype(np.int64), edges[:, 2]
        num_nodes = max(int(max(src.max(initial=-1), dst.max(initial=-1))) + 1, args.nodes if args.nodes else 0)
    else:
        num_nodes = args.nodes or 200_000
        src = rng.integers(0, num_nodes, args.edges, dtype=np.int64)
        dst = rng.integers(0, num_nodes, args.edges, dtype=np.int64)
        weight = rng.random(args.edges)
    if args.seeds_file:
        rows = read_csv(Path(args.seeds_file), 2)
        seeds = [(int(n), float(e)) for n, e in rows]
    else:
        seeds = [(int(n), 1.0) for n in rng.choice(num_nodes, size=args.num_seeds, replace=False)]
    return src, dst, weight, num_nodes, seeds


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges-file", help="CSV src,dst,weight (undirected)")
    parser.add_argument("--seeds-file", help="CSV node,energy")
    parser.add_argument("--nodes", type=int, default=0, help="node count (default 200000, or max id + 1 of the file)")
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--num-seeds", type=int, default=20)
    parser.add_argument("--steps", default="1,3,11")
    parser.add_argument("--decay", type=float, default=0.7)
    parser.add_argument("--threshold", type=float, default=0.01)
    parser.add_argument("--max-active", type=int, default=10_000)
    parser.add_argument("--max-fanout", type=int, default=None)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--impl", default="native,python", help="comma list of native, python")
    parser.add_argument("--reps", type=int, default=300, help="timed calls per step count (native)")
    parser.add_argument("--ref-reps", type=int, default=15, help="timed calls per step count (python reference)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    impls: list[Backend] = [i for i in ("native", "python") if i in args.impl.split(",")]  # type: ignore[misc]
    if "native" in impls and not native_available():
        sys.exit("the native extension is not built (scripts/setup.d/20-rust-core.sh)")
    src, dst, weight, num_nodes, seeds = workload(args)
    steps_list = [int(s) for s in args.steps.split(",")]
    results: dict[tuple[str, int], list[tuple[int, float]]] = {}
    for impl in impls:
        t0 = time.perf_counter()
        graph = Graph.from_edges(src, dst, weight, num_nodes, backend=impl)
        build_ms = (time.perf_counter() - t0) * 1e3
        print(
            json.dumps(
                {
                    "phase": "build",
                    "impl": impl,
                    "nodes": num_nodes,
                    "edges": len(src),
                    "arcs": graph.num_arcs,
                    "build_ms": round(build_ms, 1),
                }
            ),
            file=sys.stderr,
            flush=True,
        )
        reps = args.reps if impl == "native" else args.ref_reps
        for steps in steps_list:
            kwargs = {
                "steps": steps,
                "decay": args.decay,
                "threshold": args.threshold,
                "max_active_per_step": args.max_active,
                "max_fanout_per_node": args.max_fanout,
                "top_k": args.top_k,
            }
            out = spread(graph, seeds, **kwargs)  # type: ignore[arg-type]  # warm-up (native: workspace)
            samples = []
            for _ in range(reps):
                t0 = time.perf_counter_ns()
                spread(graph, seeds, **kwargs)  # type: ignore[arg-type]
                samples.append((time.perf_counter_ns() - t0) / 1e6)
            results[(impl, steps)] = out
            line = {
                "impl": impl,
                "steps": steps,
                "median_ms": round(statistics.median(samples), 4),
                "p99_ms": round(percentile(samples, 0.99), 4),
                "reps": reps,
                "results": len(out),
            }
            if impl == "python" and ("native", steps) in results:
                line["matches_native"] = results[("native", steps)] == out
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
