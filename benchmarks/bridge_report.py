"""One JSON line per measured figure (shared by the bridge benchmarks)."""

from __future__ import annotations

import json

from _serve import percentile


def report(name: str, values: list[float], unit: str = "ms", goal: dict[str, float] | None = None,
           baseline: dict[str, float] | None = None, **extra: object) -> None:
    line: dict[str, object] = {"metric": name, "n": len(values), "unit": unit,
                               "p50": round(percentile(values, 50), 3), "p99": round(percentile(values, 99), 3)}
    if goal:
        line["goal"] = goal
    if baseline:
        line["baseline"] = baseline
    line.update(extra)
    print(json.dumps(line, ensure_ascii=False), flush=True)
