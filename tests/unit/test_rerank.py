"""Unit tests for services.recommender.rerank: MMR re-ranking and the diversity metrics."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import services.recommender.rerank
from services.recommender.rerank import (
    catalog_coverage,
    intra_list_diversity,
    mmr,
    mmr_batch,
    mmr_indexed,
)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def near_duplicates() -> tuple[np.ndarray, np.ndarray]:
    """Six candidates: 0-3 near-copies of one direction, 4 orthogonal to them and ranked
    below them, 5 a weak third direction (so that 4 is not the pool's minimum score)."""
    rng = np.random.default_rng(7)
    base = np.zeros(16)
    base[0] = 1.0
    copies = base + 0.01 * rng.normal(size=(4, 16))
    others = np.zeros((2, 16))
    others[0, 1] = 1.0
    others[1, 2] = 1.0
    embeddings = _unit(np.vstack([copies, others])).astype(np.float32)
    scores = np.array([5.0, 4.9, 4.8, 4.7, 4.0, 0.0])
    return scores, embeddings


def test_doctests_pass() -> None:
    result = doctest.testmod(services.recommender.rerank)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_zero_diversity_is_stable_score_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Rounded scores have ties, which a stable sort breaks by index.
    scores = np.round(rng.normal(size=50), 1)
    embeddings = _unit(rng.normal(size=(50, 8)))
    expected = np.argsort(-scores, kind="stable")[:10].tolist()
    assert mmr(scores, embeddings, k=10, diversity=0.0) == expected


def test_diversity_promotes_a_dissimilar_item(
    near_duplicates: tuple[np.ndarray, np.ndarray],
) -> None:
    scores, embeddings = near_duplicates
    plain = mmr(scores, embeddings, k=3, diversity=0.0)
    diverse = mmr(scores, embeddings, k=3, diversity=0.3)
    assert plain == [0, 1, 2]
    assert diverse[0] == 0  # the most relevant item still leads
    assert 4 in diverse
    assert intra_list_diversity(embeddings[diverse]) > intra_list_diversity(embeddings[plain])


def test_max_diversity_still_starts_with_the_best_item(
    near_duplicates: tuple[np.ndarray, np.ndarray],
) -> None:
    scores, embeddings = near_duplicates
    # At diversity 1 every first pick ties at zero redundancy: relevance breaks the tie.
    # Reversed, so that the lowest index (5) is not the best item (0, now at 5).
    chosen = [5 - i for i in mmr(scores[::-1], embeddings[::-1], k=3, diversity=1.0)]
    assert chosen[0] == 0
    assert set(chosen) == {0, 4, 5}  # then the two directions not yet covered


def test_scale_of_the_scores_does_not_matter(
    near_duplicates: tuple[np.ndarray, np.ndarray],
) -> None:
    scores, embeddings = near_duplicates
    for transform in (lambda s: 1000.0 * s, lambda s: s - 50.0):
        assert mmr(transform(scores), embeddings, 4, 0.3) == mmr(scores, embeddings, 4, 0.3)


def test_zero_embedding_rows_are_similar_to_nothing() -> None:
    embeddings = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    scores = np.array([1.0, 0.9, 0.8])
    # Item 2 has no embedding, so it is not redundant with item 0; item 1 is a copy.
    assert mmr(scores, embeddings, k=2, diversity=0.5) == [0, 2]
    assert np.isfinite(intra_list_diversity(embeddings))


def test_all_zero_embeddings_fall_back_to_score_order() -> None:
    scores = np.array([0.2, 0.9, 0.5])
    assert mmr(scores, np.zeros((3, 4)), k=3, diversity=0.7) == [1, 2, 0]


def test_k_larger_than_candidates_returns_each_once() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=4)
    chosen = mmr(scores, _unit(rng.normal(size=(4, 3))), k=10, diversity=0.5)
    assert sorted(chosen) == [0, 1, 2, 3]
    assert mmr(scores, np.zeros((4, 3)), k=10, diversity=0.0) == np.argsort(-scores).tolist()


def test_nothing_to_choose() -> None:
    assert mmr(np.zeros(0), np.zeros((0, 3)), k=5, diversity=0.5) == []
    assert mmr(np.ones(3), np.zeros((3, 3)), k=0, diversity=0.5) == []


def test_returns_python_ints(near_duplicates: tuple[np.ndarray, np.ndarray]) -> None:
    scores, embeddings = near_duplicates
    assert all(type(i) is int for i in mmr(scores, embeddings, 3, 0.2))


@pytest.mark.parametrize(
    ("scores", "embeddings", "diversity", "message"),
    [
        (np.ones(3), np.zeros((3, 2)), 1.5, "diversity"),
        (np.ones(3), np.zeros((3, 2)), -0.1, "diversity"),
        (np.array([1.0, -np.inf, 0.0]), np.zeros((3, 2)), 0.2, "finite"),
        (np.ones(3), np.zeros((2, 2)), 0.2, "one row per score"),
        (np.ones((3, 1)), np.zeros((3, 2)), 0.2, "one-dimensional"),
        (np.ones(3), np.full((3, 2), np.nan), 0.2, "finite"),
    ],
)
def test_bad_input_is_rejected(
    scores: np.ndarray, embeddings: np.ndarray, diversity: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        mmr(scores, embeddings, k=2, diversity=diversity)


def test_intra_list_diversity_values() -> None:
    orthogonal = np.eye(3)
    assert intra_list_diversity(orthogonal) == pytest.approx(1.0)
    assert intra_list_diversity(np.array([[1.0, 0.0], [2.0, 0.0]])) == pytest.approx(0.0)
    assert intra_list_diversity(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(2.0)
    # Zero rows are ignored, not counted as distance 1.
    with_gap = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    assert intra_list_diversity(with_gap) == pytest.approx(0.0)


def test_intra_list_diversity_of_short_lists_is_zero() -> None:
    assert intra_list_diversity(np.zeros((0, 4))) == 0.0
    assert intra_list_diversity(np.ones((1, 4))) == 0.0
    assert intra_list_diversity(np.array([[1.0, 0.0], [0.0, 0.0]])) == 0.0


def test_catalog_coverage_counts_distinct_items() -> None:
    lists = [["a", "b", "c"], ["b", "c", "d"], ["a", "a"], []]
    assert catalog_coverage(lists, catalog_size=8) == pytest.approx(0.5)
    assert catalog_coverage(iter([("x",)]), catalog_size=4) == pytest.approx(0.25)
    assert catalog_coverage([], catalog_size=3) == 0.0
    with pytest.raises(ValueError, match="catalog_size"):
        catalog_coverage([["a"]], catalog_size=0)


def _padded(
    lists: list[tuple[np.ndarray, np.ndarray]], width: int, dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows padded with garbage (large scores, large vectors) that must never be chosen."""
    scores = np.full((len(lists), width), 1e9)
    vectors = np.full((len(lists), width, dim), 7.0, np.float32)
    for b, (s, v) in enumerate(lists):
        scores[b, : len(s)], vectors[b, : len(s)] = s, v
    return scores, vectors, np.array([len(s) for s, _ in lists])


@pytest.mark.parametrize("diversity", [0.0, 0.1, 0.5, 1.0])
def test_the_batched_mmr_gives_each_row_the_lists_mmr_gives_it(diversity: float) -> None:
    rng = np.random.default_rng(3)
    lists = []
    for n in [0, 1, 3, 10, 40, 40, 25]:
        vectors = rng.normal(size=(n, 24)).astype(np.float32)
        vectors[: n // 5] = 0.0  # items without text are similar to nothing
        vectors[n // 5 :] /= np.linalg.norm(vectors[n // 5 :], axis=1, keepdims=True)
        lists.append((rng.normal(size=n), vectors))
    lists.append((np.full(6, 2.0), _unit(rng.normal(size=(6, 24))).astype(np.float32)))  # ties
    scores, vectors, counts = _padded(lists, 40, 24)
    got = mmr_batch(scores, counts, vectors, k=10, diversity=diversity)
    assert got == [mmr(s, v, 10, diversity) for s, v in lists]
    assert all(type(i) is int for row in got for i in row)


def test_the_batched_mmr_breaks_ties_as_mmr_does(
    near_duplicates: tuple[np.ndarray, np.ndarray],
) -> None:
    scores, embeddings = near_duplicates
    twins = np.vstack([embeddings[:1], embeddings[:1], embeddings[4:5]])
    lists = [(scores, embeddings), (np.array([1.0, 1.0, 0.5]), twins)]
    batch_scores, vectors, counts = _padded(lists, 6, embeddings.shape[1])
    for diversity in (0.2, 0.6):
        assert mmr_batch(batch_scores, counts, vectors, 3, diversity) == [
            mmr(s, v, 3, diversity) for s, v in lists
        ]


@pytest.mark.parametrize(
    ("scores", "counts", "embeddings", "message"),
    [
        (np.ones(3), np.array([3]), np.zeros((1, 3, 2)), r"\[B, C\]"),
        (np.ones((1, 3)), np.array([4]), np.zeros((1, 3, 2)), "counts"),
        (np.ones((1, 3)), np.array([3]), np.zeros((1, 2, 2)), "embeddings"),
        (np.array([[1.0, np.nan, 0.0]]), np.array([3]), np.zeros((1, 3, 2)), "finite"),
        (np.ones((1, 3)), np.array([3]), np.full((1, 3, 2), np.inf), "finite"),
    ],
)
def test_the_batched_mmr_rejects_bad_input(
    scores: np.ndarray, counts: np.ndarray, embeddings: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        mmr_batch(scores, counts, embeddings, k=2, diversity=0.3)
    # Padding beyond a row's count may hold anything, NaN included.
    padded = np.array([[1.0, 0.5, np.nan]])
    assert mmr_batch(padded, np.array([2]), np.zeros((1, 3, 2)), 5, 0.3) == [[0, 1]]


@pytest.mark.parametrize("diversity", [0.05, 0.1, 0.3, 0.9])
def test_indexed_mmr_over_shared_items_gives_mmr_s_lists(diversity: float) -> None:
    """Rows index one item matrix, as a scorer request does; candidates that cannot make
    the list are dropped before the picks, and the lists must still be mmr's exactly:
    here with clusters of near-twins (redundancy near 1) and scores whose spread leaves
    most of each row far below its 10th best."""
    rng = np.random.default_rng(11)
    centres = _unit(rng.normal(size=(12, 32)))
    items = centres[rng.integers(0, 12, 300)] + 0.05 * rng.normal(size=(300, 32))
    items[:20] = 0.0  # without text
    items = items.astype(np.float32)
    for trial in range(20):
        counts = rng.integers(0, 100, 16)
        counts[0] = 100
        index = rng.integers(0, len(items), (16, 100))
        scores = rng.normal(size=(16, 100)) * rng.uniform(0.1, 5.0)
        scores[:, :3] += 4.0 * trial / 20  # a few clear winners in some trials
        got = mmr_indexed(scores, counts, items, index, 10, diversity)
        want = [
            mmr(scores[b, :n], items[index[b, :n]], 10, diversity) for b, n in enumerate(counts)
        ]
        assert got == want


def test_indexed_mmr_rejects_an_index_of_another_shape() -> None:
    with pytest.raises(ValueError, match="index"):
        mmr_indexed(np.ones((2, 3)), np.array([3, 3]), np.ones((4, 2)), np.zeros((2, 2)), 2, 0.1)


def test_an_empty_batch_or_empty_rows_give_empty_lists() -> None:
    assert mmr_batch(np.zeros((2, 0)), np.zeros(2, int), np.zeros((2, 0, 3)), 3, 0.1) == [[], []]
    assert mmr_batch(np.zeros((0, 5)), np.zeros(0, int), np.zeros((0, 5, 3)), 3, 0.1) == []


def test_a_bad_embedding_is_refused_even_for_a_candidate_that_could_not_win() -> None:
    scores = np.array([[10.0, 9.0, 8.0, 0.0]])  # the last is far below the 2nd best
    vectors = np.eye(4)[None].copy()
    vectors[0, 3, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        mmr_batch(scores, np.array([4]), vectors, k=2, diversity=0.1)
