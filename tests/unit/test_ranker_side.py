"""The ranker's training features are the worker's live features, point in time."""

from __future__ import annotations

import numpy as np

from models.candidate_features import SEGMENT_AFFINITY, TRENDING, model_side
from models.ranker_training import (
    SideFeatures,
    SideTimeline,
    global_ranks,
)
from services.recommender.state import ItemStats


def _clicks(seed: int = 3, users: int = 12, items: int = 30, per_user: int = 9):
    """Per-user sequences (no repeats) with times that interleave users."""
    rng = np.random.default_rng(seed)
    sequences = [rng.permutation(items)[:per_user].astype(np.int64) for _ in range(users)]
    times = [np.sort(rng.integers(0, 50, per_user)).astype(np.float64) for _ in range(users)]
    return sequences, times, items


def test_global_ranks_order_every_click_by_time_keeping_each_users_order() -> None:
    ranks = global_ranks([np.array([5.0, 5.0, 9.0]), np.array([1.0, 5.0])])
    assert [r.tolist() for r in ranks] == [[1, 2, 4], [0, 3]]


def test_timeline_features_equal_the_workers_live_statistics_before_each_click() -> None:
    sequences, times, n_items = _clicks()
    ranks = global_ranks(times)
    timeline = SideTimeline(sequences, ranks, n_items)
    events = sorted(
        (int(ranks[u][t]), u, t) for u in range(len(sequences)) for t in range(len(sequences[u]))
    )
    stats = ItemStats()
    recent: dict[int, list[str]] = {u: [] for u in range(len(sequences))}
    candidates = np.arange(n_items)[None, :]
    checked = 0
    for tau, u, t in events:
        item = str(sequences[u][t])
        if t > 0:
            live = stats.neighbours(recent[u], n_items)
            want_covis = np.log1p([live.get(str(c), 0.0) for c in range(n_items)])
            want_pop = np.log1p([stats.popularity.get(str(c), 0) for c in range(n_items)])
            got = timeline.features([sequences[u][:t]], np.array([tau]), candidates)[0]
            np.testing.assert_allclose(got[:, 0], want_covis, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got[:, 1], want_pop, rtol=1e-6)
            checked += 1
        # The click counts only after it was ranked, as in the worker.
        stats.observe(item, recent[u][:5], float(tau))
        recent[u].insert(0, item)
    assert checked == sum(len(s) - 1 for s in sequences)


def test_whole_sequence_features_leak_the_target_and_the_timeline_does_not() -> None:
    sequences = [np.array([0, 1]), np.array([2, 3])]
    ranks = global_ranks([np.array([0.0, 1.0]), np.array([2.0, 3.0])])
    history, target = sequences[0][:1], int(sequences[0][1])
    leaky = SideFeatures.from_sequences(sequences, 4).for_histories([history])[0, target]
    assert leaky[0] > 0 and leaky[1] > 0  # its own co-visit and its own click
    pit = SideTimeline(sequences, ranks, 4).features([history], ranks[0][1:], np.array([[target]]))
    assert pit[0, 0, 0] == 0 and pit[0, 0, 1] == 0


def test_the_ranker_gets_no_segment_affinity_it_was_not_trained_on() -> None:
    features = np.array([[[1.0, 2.0, 3.0, 4.0]]], np.float32)
    side = model_side(features)
    assert side[0, 0, SEGMENT_AFFINITY] == 0 and side[0, 0, TRENDING] == 2.0
    assert features[0, 0, SEGMENT_AFFINITY] == 4.0  # the caller's rows are untouched
