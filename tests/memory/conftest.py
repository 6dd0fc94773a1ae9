"""Fixtures for the memory tests: real models (loaded once), real SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.memory.config import MemoryConfig
from server.memory.embedder import Embedder, MiniLmEmbedder, UseM3Embedder
from server.memory.engine import MemoryEngine
from server.memory.server import open_engine

DATA = Path(__file__).parent / "data"


def load_fixture(name: str) -> list[tuple[str, str]]:
    """The two tab-separated columns of tests/memory/data/`name` (fact and question, or kind and query)."""
    rows = []
    for line in (DATA / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            first, second = line.split("\t")
            rows.append((first, second))
    return rows


@pytest.fixture(scope="session")
def embedders() -> dict[str, Embedder]:
    """Both packaged models, loaded once for the whole run (each takes seconds)."""
    loaded: dict[str, Embedder] = {"minilm": MiniLmEmbedder(), "use-m3": UseM3Embedder()}
    for model in loaded.values():
        model.encode(["warm up"])
    return loaded


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'memory.db'}"
    return str(request.getfixturevalue("pg_url"))


def make_config(data_dir: Path, db_url: str, **overrides: object) -> MemoryConfig:
    settings: dict[str, object] = {"secretary_interval_s": 0.0, "index_save_interval_s": 0.0}
    settings.update(overrides)
    return MemoryConfig(data_dir=data_dir, db_url=db_url, **settings)  # type: ignore[arg-type]


@pytest.fixture
async def engine(data_dir: Path, db_url: str, embedders: dict[str, Embedder]) -> AsyncIterator[MemoryEngine]:
    eng, db = await open_engine(make_config(data_dir, db_url), embedders)
    try:
        yield eng
    finally:
        await eng.close()
        db.dispose()
