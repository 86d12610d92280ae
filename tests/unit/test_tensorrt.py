"""The TensorRT build command: Triton configs everywhere, engines and parity on a GPU only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.ranker import RankerConfig, SequenceRanker
from models.ranker_export import export_onnx
from models.tensorrt_build import GpuUnavailable, _require_gpu, main, plan_config, probe_inputs


def _gpu() -> bool:
    try:
        _require_gpu()
        return True
    except GpuUnavailable:
        return False


HAS_GPU = _gpu()
needs_gpu = pytest.mark.skipif(
    not HAS_GPU, reason="needs an NVIDIA GPU with TensorRT 10; none on this machine (CI has none)"
)


@pytest.fixture(scope="module")
def scorer_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trt") / "scorer.onnx"
    export_onnx(SequenceRanker(RankerConfig()).eval(), path)
    return path


def test_plan_config_declares_the_onnx_inputs_and_outputs(scorer_onnx: Path) -> None:
    text = plan_config("scorer", scorer_onnx)
    assert 'platform: "tensorrt_plan"' in text and "max_batch_size: 0" in text
    assert '{ name: "HISTORY_IDX", data_type: TYPE_INT32, dims: [ -1, -1 ] }' in text
    assert '{ name: "ITEMS", data_type: TYPE_FP32, dims: [ -1, -1 ] }' in text
    assert '{ name: "SCORES", data_type: TYPE_FP32, dims: [ -1, -1 ] }' in text


def test_probe_inputs_are_valid_for_the_scorer() -> None:
    feeds = probe_inputs("scorer", np.random.default_rng(0))
    n_items = feeds["ITEMS"].shape[0]
    assert feeds["CANDIDATE_IDX"].max() < n_items and feeds["HISTORY_IDX"].min() >= -1


@pytest.mark.skipif(HAS_GPU, reason="checks the message shown where there is no GPU")
def test_without_a_gpu_the_command_says_so(
    scorer_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scorer", str(scorer_onnx), "--repository", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "GPU" in err or "TensorRT" in err


@pytest.mark.gpu
@needs_gpu
def test_scorer_engine_matches_onnx_in_fp16(scorer_onnx: Path, tmp_path: Path) -> None:
    from models.tensorrt_build import build_and_check

    report = build_and_check("scorer", scorer_onnx, tmp_path)
    assert report.max_abs_diff < 5e-2, report
    assert (tmp_path / "scorer" / "1" / "model.plan").stat().st_size == report.engine_bytes


def test_the_trainer_records_why_it_built_no_plan(scorer_onnx: Path, tmp_path: Path) -> None:
    """A retraining's version gets a TensorRT plan only where a GPU is; elsewhere the
    decision record says why not, and the version is the ONNX alone."""
    import shutil

    from services.trainer.job import export_plan

    shutil.copy(scorer_onnx, tmp_path / "model.onnx")
    note = export_plan(tmp_path)
    if HAS_GPU:
        assert note.startswith("built model.plan") and (tmp_path / "model.plan").stat().st_size
    else:
        assert note.startswith("skipped: ") and ("GPU" in note or "TensorRT" in note)
        assert not (tmp_path / "model.plan").exists()
