"""Shared by the tests of the real transformers path: where the packaged SmolLM2 lies."""

from __future__ import annotations

from pathlib import Path

import pytest
from meshkit import TEST_MODELS

from server.llm.model_store import prepare_model


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """SmolLM2's directory, prepared once for every test that loads it (a path, nothing loaded)."""
    return prepare_model("smollm2", TEST_MODELS)
