"""`peromesh serve` children for cluster tests: cores and bridges as separate processes."""

from __future__ import annotations

from pathlib import Path

from tests.served import ServedProcess

TOKEN = "cluster-token"


class Served(ServedProcess):
    """One `peromesh serve --only <part>` child of the cluster tests (their token)."""

    def __init__(self, part: str, data_dir: Path, *flags: str) -> None:
        super().__init__(part, data_dir, TOKEN, *flags)


def core(data_dir: Path, db_url: str, cluster_url: str) -> Served:
    return Served("core", data_dir, "--db-url", db_url, "--cluster-url", cluster_url, "--llm", "scripted",
                  "--scripted-delay-ms", "1", "--asr-model", "none", "--hub-heartbeat-interval", "1",
                  "--hub-heartbeat-timeout", "4")


def bridge(data_dir: Path, core_addresses: list[str]) -> Served:
    return Served("bridge", data_dir, "--core-addr", ",".join(core_addresses))
