"""Online user segments: clustering, per-segment favourites, decay, bounds, snapshots,
and assigning (read-only) apart from learning (what replicas share)."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter

import numpy as np
import pytest

from services.recommender.segments import COLD_SEGMENT, SegmentConfig, UserSegmenter

DIM = 384
HOUR = 3600.0


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def clustered_users(
    n: int, n_clusters: int = 3, noise: float = 0.15, seed: int = 7
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit user vectors around ``n_clusters`` random (so near-orthogonal) tastes."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((n_clusters, DIM)))
    labels = rng.integers(n_clusters, size=n)
    users = unit(centres[labels] + noise * unit(rng.standard_normal((n, DIM))))
    return users, labels


def centers(segmenter: UserSegmenter) -> list[list[float]]:
    return list(segmenter.to_state()["centers"])


def learn(segmenter: UserSegmenter, vector: np.ndarray) -> int:
    """What one process alone does per click: assign, then learn the same vector."""
    segment = segmenter.assign(vector)
    assert segmenter.learn(segmenter.reduce(vector)) == segment
    return segment


def test_assign_returns_a_python_int_in_range() -> None:
    segmenter = UserSegmenter(SegmentConfig(n_segments=5))
    rng = np.random.default_rng(0)
    for vector in rng.standard_normal((200, DIM)).astype(np.float32):
        segment = learn(segmenter, vector)
        assert type(segment) is int and 0 <= segment < 5


def test_well_separated_tastes_get_distinct_stable_segments() -> None:
    segmenter = UserSegmenter()
    users, labels = clustered_users(600)
    for vector in users[:300]:  # warm-up
        learn(segmenter, vector)
    seen: dict[int, Counter[int]] = {label: Counter() for label in range(3)}
    for vector, label in zip(users[300:], labels[300:], strict=True):
        seen[int(label)][learn(segmenter, vector)] += 1
    dominant = {}
    for label, counts in seen.items():
        segment, hits = counts.most_common(1)[0]
        assert hits >= 0.95 * sum(counts.values()), (label, counts)
        dominant[label] = segment
    assert len(set(dominant.values())) == 3, dominant


def test_a_user_clicking_repeatedly_at_start_does_not_take_every_segment() -> None:
    segmenter = UserSegmenter(SegmentConfig(n_segments=3))
    users, labels = clustered_users(300)
    for _ in range(20):
        learn(segmenter, users[0])
    by_label: dict[int, Counter[int]] = {label: Counter() for label in range(3)}
    for vector, label in zip(users, labels, strict=True):
        by_label[int(label)][learn(segmenter, vector)] += 1
    dominant = {counts.most_common(1)[0][0] for counts in by_label.values()}
    assert len(dominant) == 3, by_label


@pytest.mark.parametrize("fill", [0.0, float("nan")])
def test_uninformative_vector_gets_cold_segment_and_is_not_learned(fill: float) -> None:
    segmenter = UserSegmenter()
    users, _ = clustered_users(50)
    for vector in users:
        learn(segmenter, vector)
    before = centers(segmenter)
    assert learn(segmenter, np.full(DIM, fill, np.float32)) == COLD_SEGMENT
    assert segmenter.reduce(np.full(DIM, fill, np.float32)) == []
    assert centers(segmenter) == before
    # The learned path does move a centroid, so the comparison above can fail.
    learn(segmenter, users[0])
    assert centers(segmenter) != before


def test_wrong_shapes_and_segments_are_refused() -> None:
    segmenter = UserSegmenter(SegmentConfig(n_segments=4))
    with pytest.raises(ValueError, match="shape"):
        segmenter.assign(np.ones(DIM + 1, np.float32))
    for call in (
        lambda: segmenter.observe(4, "a", 0.0),
        lambda: segmenter.favourites(-1, 3),
        lambda: segmenter.affinity(4, "a"),
    ):
        with pytest.raises(ValueError, match="outside"):
            call()


def test_favourites_reflect_what_the_segments_users_clicked() -> None:
    segmenter = UserSegmenter()
    for item in ["a", "a", "a", "b", "b", "c"]:
        segmenter.observe(1, item, 0.0)
    segmenter.observe(2, "z", 0.0)
    assert segmenter.favourites(1, 2) == ["a", "b"]
    assert segmenter.favourites(1, 10) == ["a", "b", "c"]
    assert segmenter.favourites(2, 5) == ["z"]
    assert segmenter.favourites(3, 5) == []


def test_event_time_decay_favours_recent_clicks() -> None:
    segmenter = UserSegmenter(SegmentConfig(halflife_s=HOUR))
    for _ in range(3):
        segmenter.observe(0, "old", 0.0)
    for _ in range(2):
        segmenter.observe(0, "new", 0.0)
    assert segmenter.favourites(0, 1) == ["old"]

    later = UserSegmenter(SegmentConfig(halflife_s=HOUR))
    for _ in range(3):
        later.observe(0, "old", 0.0)
    for _ in range(2):
        later.observe(0, "new", 2 * HOUR)  # "old" has decayed to 3/4 by then
    assert later.favourites(0, 2) == ["new", "old"]
    assert later.affinity(0, "old") == pytest.approx(math.log1p(0.75))


def test_favourites_refresh_after_enough_clicks() -> None:
    segmenter = UserSegmenter(SegmentConfig(refresh_every=10))
    segmenter.observe(0, "a", 0.0)
    assert segmenter.favourites(0, 1) == ["a"]
    for _ in range(5):
        segmenter.observe(0, "b", 0.0)
    assert segmenter.favourites(0, 1) == ["a"]  # cached: bounded staleness, by design
    for _ in range(5):
        segmenter.observe(0, "b", 0.0)
    assert segmenter.favourites(0, 1) == ["b"]
    assert segmenter.favourites(0, 2) == ["b", "a"]  # a longer list is recomputed


def test_items_per_segment_stay_bounded_and_keep_the_strongest() -> None:
    config = SegmentConfig(max_items=100, keep_items=50)
    segmenter = UserSegmenter(config)
    for _ in range(20):
        segmenter.observe(0, "hit", 0.0)
    for i in range(1000):
        segmenter.observe(0, f"once{i}", float(i))
    tracked = segmenter.to_state()["counts"]["0"]
    assert 50 <= len(tracked) <= 100
    assert "hit" in tracked
    assert segmenter.favourites(0, 1) == ["hit"]


def test_affinity_is_zero_when_unknown_and_grows_with_clicks() -> None:
    segmenter = UserSegmenter()
    assert segmenter.affinity(0, "a") == 0.0
    values = []
    for _ in range(5):
        segmenter.observe(0, "a", 0.0)
        values.append(segmenter.affinity(0, "a"))
    assert values[0] == pytest.approx(math.log1p(1.0))
    assert all(b > a for a, b in itertools.pairwise(values))
    assert segmenter.affinity(1, "a") == 0.0  # counts are per segment


def test_state_round_trips_through_json_and_resumes_identically() -> None:
    config = SegmentConfig(n_segments=6, seed=3)
    original = UserSegmenter(config)
    users, _ = clustered_users(400, n_clusters=4)
    for i, vector in enumerate(users[:200]):
        original.observe(learn(original, vector), f"i{i % 37}", float(i))

    restored = UserSegmenter.from_state(json.loads(json.dumps(original.to_state())))
    assert restored.to_state() == original.to_state()
    for i, vector in enumerate(users[200:]):
        segment = learn(original, vector)
        assert learn(restored, vector) == segment
        original.observe(segment, f"i{i % 37}", 200.0 + i)
        restored.observe(segment, f"i{i % 37}", 200.0 + i)
    for segment in range(config.n_segments):
        assert restored.favourites(segment, 5) == original.favourites(segment, 5)
        assert restored.affinity(segment, "i3") == original.affinity(segment, "i3")


def test_fresh_state_round_trips_and_other_versions_are_refused() -> None:
    fresh = UserSegmenter()
    state = json.loads(json.dumps(fresh.to_state()))
    vector = clustered_users(1)[0][0]
    assert UserSegmenter.from_state(state).assign(vector) == fresh.assign(vector)
    with pytest.raises(ValueError, match="version"):
        UserSegmenter.from_state({**state, "version": 0})


def test_assign_learns_nothing() -> None:
    segmenter = UserSegmenter(SegmentConfig(n_segments=4))
    users, _ = clustered_users(40)
    for vector in users[:20]:
        learn(segmenter, vector)
    before = segmenter.to_state()
    for vector in users[20:]:
        segmenter.assign(vector)
        segmenter.reduce(vector)
    assert segmenter.to_state() == before


def test_replicas_learning_the_published_vectors_hold_the_same_segments() -> None:
    """One worker assigns and publishes ``reduce``'s vector (JSON); every replica, that
    worker included, learns from the published vectors in one order."""
    config = SegmentConfig(n_segments=5, seed=4)
    owner, replica = UserSegmenter(config), UserSegmenter(config)
    users, _ = clustered_users(300, n_clusters=4)
    for i, vector in enumerate(users):
        segment = owner.assign(vector)
        published = json.loads(json.dumps({"v": owner.reduce(vector), "s": segment}))
        for segmenter in (owner, replica):
            segmenter.learn(published["v"])
            segmenter.observe(published["s"], f"i{i % 23}", float(i))
    assert replica.to_state() == owner.to_state()
    with pytest.raises(ValueError, match="reduced vector"):
        owner.learn([1.0, 0.0])
