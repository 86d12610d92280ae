"""The served scorer: request checks, merging ragged requests, and the committed model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.ranker import RankerConfig, SequenceRanker
from models.ranker_export import export_onnx
from models.serving import (
    MAX_MERGED_ROWS,
    RANK_INPUTS,
    RANK_OUTPUT,
    ModelLoadError,
    OnnxModel,
    RankRequest,
    RankRequestError,
    merge_rank_requests,
    run_ranker,
)
from models.train_ranker import CHECKPOINT_FILE, MANIFEST_FILE, MODEL_FILE

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "triton_models" / "scorer" / "1"
SMALL = RankerConfig(embedding_dim=384, d_model=16, n_heads=2, n_layers=1, max_history=8)


def _request(rng: np.random.Generator, users: int, items: int, h: int, c: int) -> RankRequest:
    hist = rng.integers(-1, items, size=(users, h)).astype(np.int32)
    return RankRequest(
        items=rng.normal(size=(items, 384)).astype(np.float32) / 20,
        history_idx=hist,
        candidate_idx=rng.integers(0, items, size=(users, c)).astype(np.int32),
        side=rng.uniform(0, 3, size=(users, c, 4)).astype(np.float32),
    )


def _feeds(r: RankRequest) -> dict[str, np.ndarray]:
    return dict(zip(RANK_INPUTS, (r.items, r.history_idx, r.candidate_idx, r.side), strict=True))


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory: pytest.TempPathFactory) -> OnnxModel:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ranker") / "model.onnx"
    export_onnx(SequenceRanker(SMALL), path)
    return OnnxModel(path, RANK_INPUTS, (RANK_OUTPUT,))


def test_merged_requests_score_exactly_as_each_alone(small_onnx: OnnxModel) -> None:
    rng = np.random.default_rng(0)
    requests = [_request(rng, *shape) for shape in ((3, 20, 5, 7), (1, 9, 8, 11), (2, 4, 1, 3))]
    merged = run_ranker(small_onnx, requests)
    for req, got in zip(requests, merged, strict=True):
        alone = small_onnx.run(_feeds(req))[RANK_OUTPUT]
        assert got.shape == req.candidate_idx.shape
        assert np.max(np.abs(got - alone)) <= 1e-5


def test_merge_shifts_indices_and_pads() -> None:
    rng = np.random.default_rng(1)
    a, b = _request(rng, 2, 5, 3, 4), _request(rng, 1, 6, 2, 6)
    m = merge_rank_requests([a, b])
    assert m.items.shape == (11, 384) and m.history_idx.shape == (3, 3)
    assert m.candidate_idx.shape == (3, 6) and m.side.shape == (3, 6, 4)
    np.testing.assert_array_equal(m.candidate_idx[2], b.candidate_idx[0] + 5)
    np.testing.assert_array_equal(m.history_idx[2, 2], -1)  # padding stays padding
    kept = b.history_idx[0] >= 0
    np.testing.assert_array_equal(m.history_idx[2, :2][kept], b.history_idx[0][kept] + 5)
    np.testing.assert_array_equal(m.side[:2, 4:], 0.0)


def test_many_requests_are_split_into_calls_of_bounded_rows(small_onnx: OnnxModel) -> None:
    calls: list[int] = []
    real_run = small_onnx.run

    def counting(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append(inputs["CANDIDATE_IDX"].shape[0])
        return real_run(inputs)

    small_onnx.run = counting  # type: ignore[method-assign]  # spy on the session calls
    try:
        rng = np.random.default_rng(2)
        requests = [_request(rng, 200, 30, 4, 5) for _ in range(5)]
        out = run_ranker(small_onnx, requests)
    finally:
        del small_onnx.run
    assert [o.shape for o in out] == [(200, 5)] * 5
    assert max(calls) <= MAX_MERGED_ROWS and sum(calls) == 1000 and len(calls) == 3


def test_empty_requests_get_empty_scores_without_running(small_onnx: OnnxModel) -> None:
    rng = np.random.default_rng(3)
    empty = RankRequest(
        np.zeros((1, 384), np.float32),
        np.zeros((2, 0), np.int32),
        np.zeros((2, 0), np.int32),
        np.zeros((2, 0, 4), np.float32),
    )
    full = _request(rng, 1, 3, 2, 2)
    out = run_ranker(small_onnx, [empty, full])
    assert out[0].shape == (2, 0) and out[1].shape == (1, 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"CANDIDATE_IDX": np.array([[[0, 99]]], np.int32)}, "CANDIDATE_IDX must index"),
        ({"HISTORY_IDX": np.array([[[-2]]], np.int32)}, "HISTORY_IDX must be -1"),
        ({"SIDE": np.zeros((1, 1, 3, 4), np.float32)}, "axes disagree"),
        ({"ITEMS": np.full((1, 2, 384), np.nan, np.float32)}, "finite"),
        ({"ITEMS": np.zeros((2, 2, 384), np.float32)}, "leading axis of 1"),
        ({"SIDE": None}, "SIDE is missing"),
    ],
)
def test_malformed_requests_are_rejected_with_a_reason(
    change: dict[str, np.ndarray | None], message: str
) -> None:
    arrays: dict[str, np.ndarray | None] = {
        "ITEMS": np.zeros((1, 2, 384), np.float32),
        "HISTORY_IDX": np.array([[[1, -1]]], np.int32),
        "CANDIDATE_IDX": np.array([[[0, 1]]], np.int32),
        "SIDE": np.zeros((1, 1, 2, 4), np.float32),
    }
    RankRequest.from_arrays(arrays, leading_one=True)  # the unchanged request is fine
    arrays.update(change)
    with pytest.raises(RankRequestError, match=message):
        RankRequest.from_arrays(arrays, leading_one=True)  # type: ignore[arg-type]


def test_committed_scorer_is_the_trained_ranker_and_matches_its_checkpoint() -> None:
    from models.ranker_training import RankerRecommender

    manifest = json.loads((COMMITTED / MANIFEST_FILE).read_text())
    assert manifest["source"] == "ml-100k" and manifest["valid_ndcg_at_10"] > 0.05
    model = RankerRecommender.load_model(COMMITTED / CHECKPOINT_FILE)
    onnx_model = OnnxModel(COMMITTED / MODEL_FILE, RANK_INPUTS, (RANK_OUTPUT,))
    rng = np.random.default_rng(4)
    req = _request(rng, 4, 40, 10, 25)
    from models.ranker import IndexedRanker

    with torch.no_grad():
        expected = IndexedRanker(model)(
            *(torch.from_numpy(a) for a in _feeds(req).values())
        ).numpy()
    got = onnx_model.run(_feeds(req))[RANK_OUTPUT]
    assert np.max(np.abs(got - expected)) <= 1e-4


def test_garbage_or_mismatched_model_files_fail_with_a_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"definitely not protobuf")
    with pytest.raises(ModelLoadError, match="cannot load"):
        OnnxModel(garbage, RANK_INPUTS, (RANK_OUTPUT,))
    with pytest.raises(ModelLoadError, match="does not exist"):
        OnnxModel(tmp_path / "missing.onnx", RANK_INPUTS, (RANK_OUTPUT,))
    with pytest.raises(ModelLoadError, match="expected inputs"):
        OnnxModel(COMMITTED / MODEL_FILE, ("TOKENS",), (RANK_OUTPUT,))
