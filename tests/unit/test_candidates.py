"""Candidate features read from per-item arrays equal the per-item dict lookups exactly.

``candidates.generate`` gathers its feature columns by item column (``ItemStats.item_ids``,
``Neighbours.scores_of``, ``ItemStats.popularity_of`` / ``trending_of``, the segmenter's
arrays). The reference here is what it did before: a dict lookup per candidate and
feature, with the same vectorised decay. A replayed stream with late events, pruned
segment counts, a snapshot restored half-way and items nobody clicked compares the
features bit for bit.
"""

from __future__ import annotations

import random
from functools import partial
from itertools import chain

import numpy as np
import pytest

from services.recommender import candidates as cand
from services.recommender import covis
from services.recommender.segments import SegmentConfig, UserSegmenter
from services.recommender.state import COVIS_WINDOW, ItemStats, UserState


def reference_affinities(segmenter: UserSegmenter, segment: int, items: list[str]) -> np.ndarray:
    """The dict version of ``UserSegmenter.affinities`` (before 2026-11-25)."""
    get, now = segmenter._counts.get(segment, {}).get, segmenter.now
    pairs = np.fromiter(
        chain.from_iterable(get(item, (0.0, now)) for item in items), np.float64, 2 * len(items)
    ).reshape(-1, 2)
    decayed = pairs[:, 0] * np.exp(-segmenter._decay * np.maximum(0.0, now - pairs[:, 1]))
    return np.log1p(decayed).astype(np.float32)


def reference_trending(stats: ItemStats, items: list[str]) -> np.ndarray:
    """The dict version of ``ItemStats.trending_of`` (``trending_many``, before 2026-11-25)."""
    get, now = stats._trend.get, stats.now
    pairs = np.fromiter(
        chain.from_iterable(get(item, (0.0, now)) for item in items), np.float64, 2 * len(items)
    ).reshape(-1, 2)
    return pairs[:, 0] * np.exp(-stats._decay * np.maximum(0.0, now - pairs[:, 1]))


def reference_features(
    c: cand.Candidates, stats: ItemStats, segmenter: UserSegmenter, segment: int | None
) -> np.ndarray:
    feats = np.empty_like(c.features)
    assert c.neighbours is not None
    feats[:, 0] = [c.neighbours.get(item, 0.0) for item in c.items]
    feats[:, 1] = [stats.popularity.get(item, 0) for item in c.items]
    feats[:, 2] = reference_trending(stats, c.items)
    np.log1p(feats[:, :3], out=feats[:, :3])
    feats[:, 3] = 0.0 if segment is None else reference_affinities(segmenter, segment, c.items)
    return feats


@pytest.mark.parametrize("dense_factor", [8, 0], ids=["scatter", "search"])
def test_features_by_item_column_equal_the_dict_lookups_bit_for_bit(
    dense_factor: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both ways ``Neighbours.scores_of`` looks scores up (small and large catalogs).
    monkeypatch.setattr(covis, "DENSE_FACTOR", dense_factor)
    rng = random.Random(4)
    config = SegmentConfig(n_segments=3, max_items=12, keep_items=8, refresh_every=5)
    stats, segmenter = ItemStats(half_life_s=600.0), UserSegmenter(config)
    users: dict[int, UserState] = {}
    checked = with_unknown = 0
    for k in range(3000):
        user_id = rng.randrange(30)
        user = users.setdefault(user_id, UserState())
        item = (
            f"i{min(int(rng.paretovariate(1.0)), 80) if rng.random() < 0.6 else rng.randrange(80)}"
        )
        # Mostly in time order, some late by up to an hour: decays and ``at`` differ.
        ts = 10.0 * k - (rng.random() * 3600.0 if rng.random() < 0.1 else 0.0)
        segment = rng.randrange(3)
        if k % 5 == 0 and user.recent:
            # Semantic neighbours include items nobody has clicked (new in the catalog).
            semantic = [(f"new{rng.randrange(5)}", 0.5), (f"i{rng.randrange(80)}", 0.4)]
            view = cand.SegmentView(
                segment,
                segmenter.favourites(segment, 50),
                partial(segmenter.affinities, segment),
            )
            for seg_view, seg in ((view, segment), (None, None)):
                got = cand.generate(user, stats, rng.choice([5, 30, 100]), semantic, seg_view)
                want = reference_features(got, stats, segmenter, seg)
                assert got.features.tobytes() == want.tobytes()
                with_unknown += any(i.startswith("new") for i in got.items)
            checked += 1
        if k == 1500:  # the arrays are rebuilt from a snapshot, as a restarted worker's
            segmenter = UserSegmenter.from_state(segmenter.to_state())
        stats.observe(item, user.recent[:COVIS_WINDOW], ts)
        segmenter.observe(segment, item, ts)
        user.record(f"e{k}", item, ts, 50, 2000)
    assert checked > 500 and with_unknown > 100
    # Pruning happened: a segment holds at most ``max_items`` counts.
    assert all(len(items) <= config.max_items for items in segmenter._counts.values())


def test_the_segment_arrays_stay_bounded_on_a_large_catalog() -> None:
    """Columns of items no segment counts any more are reused: 20,000 distinct items
    through 2 segments of at most 12 counts need at most 24 columns."""
    config = SegmentConfig(n_segments=2, max_items=12, keep_items=8)
    segmenter = UserSegmenter(config)
    rng = random.Random(7)
    for k in range(20_000):
        segmenter.observe(k % 2, f"i{k}" if k % 3 else f"hot{rng.randrange(4)}", float(k))
    counted = {item for items in segmenter._counts.values() for item in items}
    assert set(segmenter._columns) == counted
    assert len(segmenter._holders) <= config.n_segments * config.max_items
    assert segmenter._by_column.shape[2] == 256  # never grown from its first size
    items = [*counted, "i5", "never"]
    assert (
        segmenter.affinities(0, items).tobytes()
        == reference_affinities(segmenter, 0, items).tobytes()
    )
    assert (
        segmenter.affinities(1, items).tobytes()
        == reference_affinities(segmenter, 1, items).tobytes()
    )


def test_a_pruned_items_affinity_is_zero_again() -> None:
    config = SegmentConfig(n_segments=1, max_items=3, keep_items=2)
    segmenter = UserSegmenter(config)
    for n, item in enumerate(["a", "a", "a", "b", "b", "c", "d"]):
        segmenter.observe(0, item, float(n))
    assert "c" not in segmenter._counts[0]  # pruned when "d" made four
    got = segmenter.affinities(0, ["a", "b", "c", "d", "never"])
    assert got[2] == 0.0 and got[4] == 0.0
    assert (
        got.tolist() == reference_affinities(segmenter, 0, ["a", "b", "c", "d", "never"]).tolist()
    )
    assert got[0] > got[1] > 0.0
