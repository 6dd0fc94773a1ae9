"""int8 dynamic quantization (`--llm-quantize int8`) on the real SmolLM2 path: it loads, streams sense, fp32 stays.

Loading int8 under the suite's warnings-as-errors also proves torch's deprecation warnings are
silenced around the quantization call (server/llm/quantize.py): they would fail these tests.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from server.config import flags
from server.llm.base import ChatMessage, LlmRequest
from server.llm.factory import build_provider
from server.llm.local import LocalTransformersProvider
from server.llm.quantize import quantize_model
from server.llm.settings import LlmSettings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def int8(model_dir: Path) -> Iterator[LocalTransformersProvider]:
    yield LocalTransformersProvider(model_dir, threads=2, temperature=0.0, quantize="int8")


def ask(text: str, tokens: int = 16) -> LlmRequest:
    return LlmRequest([ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", text)], "", tokens)


def linears(provider: LocalTransformersProvider, kind: type[torch.nn.Module]) -> list[str]:
    return [name for name, module in provider.model.named_modules() if type(module) is kind]


def test_int8_makes_every_linear_but_lm_head_per_channel_int8(int8: LocalTransformersProvider) -> None:
    quantized = linears(int8, torch.ao.nn.quantized.dynamic.Linear)
    assert linears(int8, torch.nn.Linear) == ["lm_head"]
    assert len(quantized) == int8.quantized_layers == 7 * int8.model.config.num_hidden_layers
    weight = int8.model.get_submodule(quantized[0]).weight()
    assert weight.dtype == torch.qint8 and weight.qscheme() == torch.per_channel_affine
    assert int8.model.get_input_embeddings().weight.dtype == torch.float32


async def test_int8_streams_a_sensible_answer(int8: LocalTransformersProvider) -> None:
    deltas = [d async for d in int8.stream(ask("What is the capital of France?"))]
    assert len(deltas) >= 3 and "Paris" in "".join(deltas), deltas
    assert int8.last_new_tokens <= 16


async def test_fp32_stays_fp32_and_answers(model_dir: Path) -> None:
    fp32 = LocalTransformersProvider(model_dir, threads=2, temperature=0.0)
    assert fp32.quantized_layers == 0 and not linears(fp32, torch.ao.nn.quantized.dynamic.Linear)
    deltas = [d async for d in fp32.stream(ask("What is the capital of France?"))]
    assert len(deltas) >= 3 and "".join(deltas).strip()


async def test_the_flag_reaches_the_loaded_model(model_dir: Path, tmp_path: Path) -> None:
    """--llm-quantize int8 → LlmSettings → factory → an int8 model that passed the server's warm-up."""
    parser = argparse.ArgumentParser()
    flags.add_flags(parser, LlmSettings)
    settings = flags.read(LlmSettings, parser.parse_args(["--llm-quantize", "int8", "--model-dir", str(model_dir)]))
    assert settings.quantize == "int8" and LlmSettings().quantize == "int8"  # the default
    assert flags.read(LlmSettings, parser.parse_args(["--llm-quantize", "none"])).quantize == "none"
    provider = await build_provider(settings, tmp_path)
    try:
        assert isinstance(provider, LocalTransformersProvider) and provider.quantized_layers > 0
    finally:
        await provider.aclose()


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="int4"):
        quantize_model(torch.nn.Sequential(torch.nn.Linear(2, 2)), "int4")
