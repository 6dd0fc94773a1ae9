"""Start `peromesh serve` as a child process for benchmarks and tear it down after."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

BIN = Path(sys.executable).parent
TOKEN = "bench-token"  # the mesh token of benchmark meshes (unless the flags give another)


@contextlib.contextmanager
def serve(*flags: str, only: str = "tts,core", timeout_s: float = 600) -> Iterator[dict[str, str]]:
    """Yields the endpoints of a fresh mesh (own data dir, ports chosen by the OS); gRPC wants TOKEN."""
    if "--token" not in flags:
        flags = (*flags, "--token", TOKEN)
    with tempfile.TemporaryDirectory() as tmp:
        ports = [a for name in only.split(",") for a in (f"--{name}-port", "0")]
        proc = subprocess.Popen(
            [
                str(BIN / "peromesh"),
                "serve",
                "--only",
                only,
                "--data-dir",
                tmp,
                "--log-level",
                "WARNING",
                *ports,
                *flags,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "peromesh: ready" in line or not line:
                break
        try:
            endpoints = json.loads((Path(tmp) / "endpoints.json").read_text())
            endpoints["pid"] = str(proc.pid)  # for benchmarks that watch the server's RSS and files
            yield endpoints
        finally:
            proc.terminate()
            proc.wait(30)
            proc.stdout.close()


def local_model_dir(model: str, data_dir: str = "~/.peromesh") -> str:
    """The converted folder of local model `model` under `data_dir`, made once (minutes) if missing.

    A benchmark's mesh gets a fresh data dir, where the server would convert the GGUF again on
    every start; handing it this folder as --model-dir starts it as a prepared install does."""
    from server.llm.model_store import prepare_model  # only the local-model benchmarks need it

    return str(prepare_model(model, Path(data_dir).expanduser()))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


PG = "postgresql://postgres@127.0.0.1:5432/postgres"  # the local PostgreSQL (trust auth, scripts/services.sh)
REDIS = "redis://127.0.0.1:6379/0"  # the local Redis


@contextlib.contextmanager
def cluster_urls(pg: str = PG, redis_url: str = REDIS) -> Iterator[tuple[str, str]]:
    """(--db-url, --cluster-url) of one benchmark cluster: a fresh PostgreSQL schema and a Redis key prefix
    of its own, both removed afterwards, so a run never counts rows or keys of another (the benchmark-side
    twin of the cluster tests' pg_url and cluster_url fixtures, which only pytest can call)."""
    import uuid

    import psycopg  # only the cluster benchmarks need PostgreSQL and Redis
    import redis

    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield f"{pg}?options=-csearch_path%3D{name}", f"{redis_url}?prefix={name}"
    finally:
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')
        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(f"{name}:*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
