"""The first scorer: torch ↔ ONNX parity, the committed model, and the serving helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.baseline_scorer import INPUT_NAME, OUTPUT_NAME, LinearScorer, export_onnx
from models.candidate_features import BASELINE_WEIGHTS, NUM_FEATURES
from models.serving import ModelLoadError, OnnxModel, run_grouped

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "triton_models" / "scorer" / "1" / "model.onnx"


def test_onnx_export_matches_torch_for_any_batch_and_candidate_count(tmp_path: Path) -> None:
    model = LinearScorer()
    path = tmp_path / "model.onnx"
    export_onnx(model, path)
    onnx_model = OnnxModel(path, (INPUT_NAME,), (OUTPUT_NAME,))
    rng = np.random.default_rng(0)
    for batch, cands in ((1, 1), (3, 100), (64, 17)):
        x = rng.normal(size=(batch, cands, NUM_FEATURES)).astype(np.float32)
        expected = model(torch.from_numpy(x)).detach().numpy()
        got = onnx_model.run({INPUT_NAME: x})[OUTPUT_NAME]
        assert got.shape == (batch, cands)
        assert np.max(np.abs(got - expected)) <= 1e-5


def test_committed_triton_model_uses_the_baseline_weights() -> None:
    onnx_model = OnnxModel(COMMITTED, (INPUT_NAME,), (OUTPUT_NAME,))
    x = np.eye(NUM_FEATURES, dtype=np.float32)[None]
    np.testing.assert_allclose(
        onnx_model.run({INPUT_NAME: x})[OUTPUT_NAME][0], BASELINE_WEIGHTS, atol=1e-6
    )


def test_run_grouped_returns_each_requests_rows_in_order() -> None:
    onnx_model = OnnxModel(COMMITTED, (INPUT_NAME,), (OUTPUT_NAME,))
    rng = np.random.default_rng(1)
    arrays = [
        rng.normal(size=(b, c, NUM_FEATURES)).astype(np.float32)
        for b, c in ((2, 5), (1, 9), (3, 5))
    ]
    outs = run_grouped(onnx_model, INPUT_NAME, arrays, OUTPUT_NAME)
    for arr, out in zip(arrays, outs, strict=True):
        np.testing.assert_allclose(out, arr @ np.asarray(BASELINE_WEIGHTS, np.float32), atol=1e-5)


def test_garbage_or_mismatched_model_files_fail_with_a_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"definitely not protobuf")
    with pytest.raises(ModelLoadError, match="cannot load"):
        OnnxModel(garbage, (INPUT_NAME,), (OUTPUT_NAME,))
    with pytest.raises(ModelLoadError, match="does not exist"):
        OnnxModel(tmp_path / "missing.onnx", (INPUT_NAME,), (OUTPUT_NAME,))
    with pytest.raises(ModelLoadError, match="expected inputs"):
        OnnxModel(COMMITTED, ("TOKENS",), (OUTPUT_NAME,))
