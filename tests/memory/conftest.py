"""Fixtures for the memory tests: real models (loaded once), real SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from peromesh.server.memory.config import MemoryConfig
from peromesh.server.memory.embedder import Embedder, MiniLmEmbedder, UseM3Embedder
from peromesh.server.memory.engine import MemoryEngine
from peromesh.server.memory.server import open_engine

PG = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def embedders() -> dict[str, Embedder]:
    """Both packaged models, loaded once for the whole run (each takes seconds)."""
    loaded: dict[str, Embedder] = {"minilm": MiniLmEmbedder(), "use-m3": UseM3Embedder()}
    for model in loaded.values():
        model.encode(["warm up"])
    return loaded


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema on the local PostgreSQL, dropped afterwards."""
    schema = f"mem_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


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
