"""int8 dynamic quantization of a loaded causal LM's Linear layers (`--llm-quantize int8`).

Why: on a CPU, decode is bound by memory bandwidth (an fp32 0.5B model reads ~2 GB of weights
per token) and prefill by matmul throughput; int8 weights are a quarter of the bytes and
int8 matmuls (fbgemm/onednn) are several times faster than fp32 ones. Dynamic quantization
needs no calibration data: weights are quantized once here, per output channel (one scale
per row keeps small rows precise); activations are quantized per batch at run time.

What stays fp32: the embeddings (a lookup, not a matmul) and `lm_head` (its logits pick
every token, so rounding them shows in greedy answers first; see benchmarks/local_llm.py).

Why the warnings are silenced here: torch marks `torch.ao.quantization` and quantized tensor
creation as deprecated (it still works in the pinned torch 2.13; its successor, torchao, is not
a dependency). They are silenced only around this one call, which runs in the loading thread.
"""

from __future__ import annotations

import warnings
from typing import Any, Final

QUANTIZE_MODES: Final = ("none", "int8")
KEEP_FP32: Final = frozenset({"lm_head"})


def quantize_model(model: Any, mode: str) -> int:
    """Quantize `model` in place as `mode` says; the number of Linear layers made int8.

    Blocking (a second or two for a 0.5B model): call it where the model was loaded, off the
    event loop."""
    if mode == "none":
        return 0
    if mode != "int8":
        raise ValueError(f"unknown quantization {mode!r}: one of {', '.join(QUANTIZE_MODES)}")
    return int8_linears(model)


def int8_linears(model: Any, keep_fp32: frozenset[str] = KEEP_FP32) -> int:
    """Make every Linear of `model` int8 (per-channel weights) in place, but those named in `keep_fp32`."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    names = {name for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] not in keep_fp32}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation", category=UserWarning)
        quantize_dynamic(model, {name: per_channel_dynamic_qconfig for name in names}, dtype=torch.qint8,
                         inplace=True)
    return len(names)
