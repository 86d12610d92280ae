"""The in-process quality replay: the worker's core and the served ranker, no broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from models.serving import RankRequest
from services.eval import inprocess, protocol
from services.eval.stream import load_stream
from services.recommender.scorer import ScoringBatch

SERVED = Path("triton_models/scorer/1/model.onnx")


def test_the_served_onnx_ranker_scores_a_batch_in_process() -> None:
    scorer = inprocess.LocalRankerScorer(SERVED)
    rng = np.random.default_rng(0)
    items = rng.normal(size=(6, 384)).astype(np.float32)
    request = RankRequest(
        items=items / np.linalg.norm(items, axis=1, keepdims=True),
        history_idx=np.array([[0, 1], [2, -1]], np.int32),
        candidate_idx=np.array([[3, 4, 5], [0, 1, 3]], np.int32),
        side=np.zeros((2, 3, 4), np.float32),
    )
    scored = asyncio.run(scorer.score(ScoringBatch(request, np.zeros((2, 3, 4), np.float32))))
    assert scored.scores.shape == (2, 3) and np.isfinite(scored.scores).all()


def test_replay_answers_every_judged_click_and_the_ranker_beats_popularity(
    tmp_path: Path,
) -> None:
    stream = load_stream("synthetic", limit=3000)
    embeddings = inprocess.item_embeddings(stream, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("item-embeddings-*.npy"))) == 1  # the next run reads it
    pairs = protocol.consecutive_pairs(stream.clicks, stream.split)
    ranked, degraded, _ = asyncio.run(
        inprocess.replay(stream, embeddings, inprocess.LocalRankerScorer(SERVED))
    )
    assert ranked.pairs == len(pairs) > 100 and ranked.answered == ranked.pairs
    assert degraded == 0
    baselines = inprocess.baseline_quality(stream, pairs, 10)[0]
    assert ranked.hr > baselines["popularity"].hr
