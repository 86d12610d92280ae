"""The LLM sequence ranker: shapes, cold items, training signal, safe checkpoints, ONNX parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.ranker import (
    OUTPUT,
    SERVING_INPUTS,
    IndexedRanker,
    RankerConfig,
    SequenceRanker,
    flops_per_request,
)
from models.ranker_export import example_inputs, export_onnx
from models.ranker_training import RankerRecommender, SideFeatures, TrainConfig, ndcg_at_10
from models.serving import OnnxModel

SMALL = RankerConfig(embedding_dim=16, d_model=16, n_heads=2, n_layers=1, max_history=8)


def test_flops_per_request_is_about_ten_mflop_for_the_default_size() -> None:
    flops = flops_per_request(RankerConfig(), history=50, candidates=100)
    assert 5e6 < flops < 20e6


def test_empty_history_and_padding_give_finite_scores() -> None:
    model = SequenceRanker(SMALL).eval()
    hist = torch.randn(3, 8, 16)
    mask = torch.zeros(3, 8)
    mask[1, :3] = 1
    with torch.no_grad():
        scores = model(hist, mask, torch.randn(3, 5, 16), torch.randn(3, 5, 4))
    assert scores.shape == (3, 5) and torch.isfinite(scores).all()
    # Padded positions do not change the answer.
    hist2 = hist.clone()
    hist2[1, 3:] = 100.0
    with torch.no_grad():
        again = model(
            hist2, mask, torch.randn(3, 5, 16).copy_(torch.zeros(3, 5, 16)), torch.zeros(3, 5, 4)
        )
        base = model(hist, mask, torch.zeros(3, 5, 16), torch.zeros(3, 5, 4))
    assert torch.allclose(again[1], base[1], atol=1e-5)


def _topic_data(n_topics: int = 4, per_topic: int = 30, n_users: int = 80, seed: int = 0):  # type: ignore[no-untyped-def]
    """Items whose text embedding reveals their topic; users click within one topic."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_topics, 16))
    emb = np.concatenate(
        [centers[t] + 0.3 * rng.normal(size=(per_topic, 16)) for t in range(n_topics)]
    )
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    seqs = [
        rng.choice(per_topic, size=8, replace=False) + (u % n_topics) * per_topic
        for u in range(n_users)
    ]
    return emb, seqs


def test_training_learns_and_scores_unseen_items_from_their_text() -> None:
    emb, seqs = _topic_data()
    cold = 9  # a topic-0 item that never appears in training
    train = [s[s != cold] for s in seqs]
    valid = [(s[:-1], int(s[-1])) for s in train[:40]]
    rec = RankerRecommender(
        emb, SMALL, TrainConfig(epochs=6, negatives=15, batch_size=64, progress=False, patience=6)
    )
    rec.side = SideFeatures.from_sequences(train, emb.shape[0])
    untrained = ndcg_at_10(rec, valid)
    result = rec.fit(train, valid)
    assert result.best_valid > untrained + 0.1, (untrained, result.history)
    scores = rec.score([np.array([0, 1, 2])])[0]
    assert scores[:30].mean() > scores[30:].mean(), "a topic-0 history ranks topic-0 items higher"
    # The cold item has no clicks at all, yet its text places it above other topics' items.
    assert scores[cold] > np.median(scores[30:])


def test_checkpoint_is_safetensors_and_round_trips(tmp_path: Path) -> None:
    emb, seqs = _topic_data()
    rec = RankerRecommender(emb, SMALL, TrainConfig(epochs=1, negatives=7, progress=False))
    rec.fit(seqs)
    path = tmp_path / "ranker.safetensors"
    rec.save(path)
    assert path.read_bytes()[8:9] == b"{"  # a safetensors JSON header, not a pickle
    loaded = RankerRecommender.load_model(path)
    inputs = example_inputs(loaded)
    with torch.no_grad():
        got = IndexedRanker(loaded)(*inputs)
        assert torch.allclose(got, IndexedRanker(rec.model.eval())(*inputs), atol=1e-6)


def test_side_features_match_the_online_covisitation_definition() -> None:
    sf = SideFeatures.from_sequences([np.array([0, 1, 2])], n_items=4)
    feats = sf.for_histories([np.array([0, 1])])[0]
    # Online: item 2 was co-visited with 1 (weight 1) and 0 (weight 1/2); reading history
    # [1, 0] (most recent first) weighs 1's row by 1 and 0's row by 1/2.
    expected_covis_2 = 1.0 * 1.0 + 0.5 * 0.5
    assert feats[2, 0] == pytest.approx(np.log1p(expected_covis_2))
    assert feats[3, 0] == 0.0 and feats[3, 1] == 0.0
    assert feats[0, 1] == pytest.approx(np.log1p(1.0))


def test_indexed_form_equals_the_direct_form() -> None:
    model = SequenceRanker(SMALL).eval()
    items, hidx, cidx, side = example_inputs(model, batch=3, history=6, candidates=5, items=9)
    mask = (hidx >= 0).float()
    with torch.no_grad():
        direct = model(
            items[hidx.clamp(min=0).long()] * mask[..., None], mask, items[cidx.long()], side
        )
        indexed = IndexedRanker(model)(items, hidx, cidx, side)
    assert torch.allclose(direct, indexed, atol=1e-6)


def test_onnx_export_matches_torch_with_dynamic_axes(tmp_path: Path) -> None:
    model = SequenceRanker(RankerConfig()).eval()
    path = tmp_path / "ranker.onnx"
    export_onnx(model, path)
    onnx_model = OnnxModel(path, SERVING_INPUTS, (OUTPUT,))
    served = IndexedRanker(model).eval()
    for batch, history, candidates, items in ((1, 1, 1, 1), (4, 50, 100, 300), (3, 9, 37, 20)):
        inputs = example_inputs(model, batch, history, candidates, items)
        with torch.no_grad():
            expected = served(*inputs).numpy()
        feeds = {n: t.numpy() for n, t in zip(SERVING_INPUTS, inputs, strict=True)}
        got = onnx_model.run(feeds)[OUTPUT]
        assert got.shape == (batch, candidates)
        assert np.max(np.abs(got - expected)) <= 1e-4
