"""The end-of-turn verdict's parts: transcript cues, their combination with the model, the model's
input features (against the wheel's own reference code), and the missing-model fallback."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from server.asr.transcript_cues import text_evidence
from server.asr.turn_detector import SmartTurnModel, TurnDetector, bundled_model_path, load_turn_detector


@pytest.mark.parametrize("text", [
    "I want to tell you about", "I want to tell you about.", "So what I was thinking is that maybe we could...",
    "I went there and", "Well, um", "I need to buy some milk and...", "It was so much fun, and then.",
    "我想跟你说，因为", "然后", "我觉得那个", "他说如果你有空的话。", "嗯",
    "Can you help me with?", "Could you give me the?", "Do you want tea or?",  # Whisper's "?" after a yes/no start
])
def test_unfinished_endings(text: str) -> None:
    assert text_evidence(text) < 0, text


@pytest.mark.parametrize("text", [
    "Can you remind me to call my mother tomorrow?", "What are you talking about?", "I went to Paris.",
    "Who are you going with?", "Can you tell me what this is for?", "Where are you from?",
    "你能提醒我明天给妈妈打电话吗？", "我们走吧", "今天天气很好。",
])
def test_finished_endings(text: str) -> None:
    assert text_evidence(text) > 0, text


def test_no_cue_leaves_the_model_alone() -> None:
    assert text_evidence("") == 0.0 and text_evidence("I like it") == 0.0 and text_evidence("See you then") == 0.0


@pytest.mark.parametrize(("probability", "text", "complete"), [
    (0.16, "I went to Paris last summer and it was wonderful.", True),  # a full stop lifts a doubtful model
    (0.96, "Can you remind me to call my mother and", False),  # a trailing "and" overrules a sure one
    (0.98, "We should probably talk to.", False),
    (0.04, "I want to tell you about.", False),
    (0.02, "So what I was thinking is that maybe we could...", False),
    (0.10, "给妹妹送什么小礼物比较好。", True),  # Mandarin asks in place; Whisper wrote "。"
    (0.17, "我明天下午有什么安排", True),
    (0.12, "下與天事何看什麼書。", True),  # in Whisper's traditional characters too
    (0.95, "我想问你为什么，因为", False),  # an interrogative does not rescue a hanging ending
    (0.70, "I like it", True),  # no cue: the model decides
    (0.30, "I like it", False),
])
def test_the_verdict_needs_both(probability: float, text: str, complete: bool) -> None:
    verdict = TurnDetector(None).judge(probability, text)
    assert verdict.complete is complete, verdict


def _reference_features() -> ModuleType:
    """pipecat's vendored numpy feature code, loaded by file path (pipecat itself is not importable)."""
    path = bundled_model_path()
    assert path is not None, "pipecat-ai==1.14.0 (--no-deps) is not installed"
    spec = importlib.util.spec_from_file_location("smart_turn_features", path.parent.parent / "_whisper_features.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_features_match_the_wheels_reference() -> None:
    reference = _reference_features()
    path = bundled_model_path()
    assert path is not None
    model = SmartTurnModel(path)
    rng = np.random.default_rng(3)
    audio = (rng.standard_normal(16000 * 3) * 0.1).astype(np.float32)
    window = np.pad(audio, (128000 - len(audio), 0))
    expected = reference.compute_whisper_log_mel_features(window, do_normalize=True)
    normalised = (window - window.mean()) / np.sqrt(window.var() + 1e-7)
    ours = model._features(normalised, padding=0)
    assert ours.shape == expected.shape == (80, 800)
    assert float(np.abs(ours - expected).max()) < 1e-3
    assert 0.0 <= model.probability(audio) <= 1.0


def test_an_absent_model_falls_back_to_silence_only_and_says_so_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = str(tmp_path / "no-such-model.onnx")
    with caplog.at_level(logging.WARNING, logger="server.asr.turn_detector"):
        first, again = load_turn_detector(missing), load_turn_detector(missing)
    assert first is again and not first.available
    assert [r.getMessage() for r in caplog.records].count(
        f"end-of-turn model {missing} not found ({missing}): turns end on silence alone") == 1
    assert not load_turn_detector("none").available
