"""Unit tests for models.offline: splits, full-ranking metrics and baselines on tiny data."""

from __future__ import annotations

import doctest
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import pytest

import models.offline
from models.offline import (
    EvalCases,
    Interactions,
    ItemKNNRecommender,
    MarkovRecommender,
    PopularityRecommender,
    SequentialRecommender,
    TrainData,
    cold_start_split,
    evaluate,
    grid_search,
    leave_one_out,
    ranking_metrics,
    report_table,
    run_benchmark,
    target_ranks,
    time_split,
)
from models.offline.baselines import recency_weights
from models.offline.metrics import per_case_metrics
from models.offline.report import json_safe
from services.contract.events import ClickEvent


class MakeInteractions(Protocol):
    def __call__(self, sequences: dict[str, str], catalog: str = "") -> Interactions: ...


@pytest.fixture
def make_interactions() -> MakeInteractions:
    """Interactions from ``{user: "abcde"}``: one item per letter, at times 0, 1, 2, ..."""

    def make(sequences: dict[str, str], catalog: str = "") -> Interactions:
        users, items, times = [], [], []
        for user, letters in sequences.items():
            for t, letter in enumerate(letters):
                users.append(user)
                items.append(letter)
                times.append(float(t))
        return Interactions.from_arrays(users, items, times, catalog=list(catalog))

    return make


def _cases(histories: list[list[int]], targets: list[int], n_items: int) -> EvalCases:
    return EvalCases.build(
        list(range(len(targets))),
        [np.asarray(h, dtype=np.int64) for h in histories],
        targets,
        n_items=n_items,
    )


def _fixed(matrix: list[list[float]]) -> Callable[[list[np.ndarray]], np.ndarray]:
    """A scorer that returns the given rows, in order, however it is chunked."""
    rows = np.asarray(matrix, dtype=np.float64)
    served = [0]

    def score(histories: list[np.ndarray]) -> np.ndarray:
        start = served[0]
        served[0] += len(histories)
        return rows[start : start + len(histories)]

    return score


# --- data ----------------------------------------------------------------------------------


def test_dense_ids_follow_catalog_then_first_appearance() -> None:
    data = Interactions.from_arrays(
        ["u2", "u1", "u2"], ["b", "c", "a"], [5.0, 1.0, 2.0], catalog=["z", "a"]
    )
    assert data.item_ids == ("z", "a", "b", "c")
    assert data.user_ids == ("u2", "u1")
    assert data.item_index["c"] == 3 and data.user_index["u1"] == 1
    # u2 clicked b at 5 and a at 2: sorted by time.
    assert data.sequences[0].tolist() == [1, 2]
    assert data.timestamps[0].tolist() == [2.0, 5.0]
    assert data.n_interactions == 3


def test_equal_timestamps_keep_arrival_order() -> None:
    data = Interactions.from_arrays(["u"] * 4, ["d", "c", "b", "a"], [1.0, 0.0, 1.0, 0.0])
    names = [data.item_ids[i] for i in data.sequences[0]]
    assert names == ["c", "a", "d", "b"]


def test_from_clicks_reads_contract_events() -> None:
    def click(n: int, user: str, item: str, second: int) -> ClickEvent:
        return ClickEvent(
            event_id=f"e{n}",
            user_id=user,
            item_id=item,
            ts=datetime(2024, 1, 1, 0, 0, second, tzinfo=UTC),
        )

    data = Interactions.from_clicks(
        [click(0, "u", "x", 3), click(1, "u", "y", 1), click(2, "v", "x", 2)], catalog=["q"]
    )
    assert data.item_ids == ("q", "x", "y")
    assert [data.item_ids[i] for i in data.sequences[0]] == ["y", "x"]
    assert data.timestamps[0][1] - data.timestamps[0][0] == 2.0


def test_mismatched_columns_are_rejected() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        Interactions.from_arrays(["u"], ["a", "b"], [0.0])


# --- splits --------------------------------------------------------------------------------


def test_leave_one_out_holds_out_the_last_two(make_interactions: MakeInteractions) -> None:
    data = make_interactions({"u": "abcde", "v": "ab", "w": "cab"})
    split = leave_one_out(data)
    a, b, c, d, e = (data.item_index[x] for x in "abcde")

    assert [s.tolist() for s in split.train.sequences] == [[a, b, c], [a, b], [c]]
    assert split.train.timestamps[0].tolist() == [0.0, 1.0, 2.0]
    assert split.valid.users.tolist() == [0, 2]
    assert [h.tolist() for h in split.valid.histories] == [[a, b, c], [c]]
    assert split.valid.targets.tolist() == [d, a]
    # The test history includes the validation item.
    assert [h.tolist() for h in split.test.histories] == [[a, b, c, d], [c, a]]
    assert split.test.targets.tolist() == [e, b]
    assert split.train.n_items == split.test.n_items == 5


def test_time_split_cuts_globally(make_interactions: MakeInteractions) -> None:
    # Times are positions: the cuts at 2 and 4 split every sequence the same way.
    data = make_interactions({"u": "abcdef", "v": "ab", "w": "abcde"})
    split = time_split(data, cuts=(2.0, 4.0))
    idx = data.item_index

    assert [len(s) for s in split.train.sequences] == [2, 2, 2]
    assert all((ts < 2.0).all() for ts in split.train.timestamps)
    assert split.valid.users.tolist() == [0, 0, 2, 2]
    assert split.valid.targets.tolist() == [idx["c"], idx["d"], idx["c"], idx["d"]]
    assert split.valid.histories[1].tolist() == [idx["a"], idx["b"], idx["c"]]
    assert split.test.users.tolist() == [0, 0, 2]
    assert split.test.targets.tolist() == [idx["e"], idx["f"], idx["e"]]


def test_time_split_drops_cases_without_history(make_interactions: MakeInteractions) -> None:
    data = make_interactions({"u": "abc"})
    split = time_split(data, cuts=(0.0, 10.0))
    assert split.train.n_interactions == 0
    assert [h.tolist() for h in split.valid.histories] == [[0], [0, 1]]


def test_time_split_default_quantiles(make_interactions: MakeInteractions) -> None:
    data = make_interactions({f"u{k}": "abcdefghij" for k in range(3)})
    split = time_split(data)  # cuts at the 0.8 and 0.9 quantiles of 0..9: 7.2 and 8.1
    assert [len(s) for s in split.train.sequences] == [8, 8, 8]
    assert len(split.valid) == 3 and len(split.test) == 3
    with pytest.raises(ValueError, match="valid_start"):
        time_split(data, valid_start=0.9, test_start=0.5)


def test_cold_start_split_removes_items_from_training(make_interactions: MakeInteractions) -> None:
    rng = np.random.default_rng(1)
    letters = "abcdefghijklmnopqrst"
    data = make_interactions(
        {f"u{k}": "".join(rng.choice(list(letters), size=12)) for k in range(40)},
        catalog=letters,
    )
    split = cold_start_split(data, fraction=0.1, seed=3)
    cold = set(split.held_out_items.tolist())

    assert len(cold) == 2
    assert split.train.n_items == data.n_items  # still in the catalog
    assert not cold & set(np.concatenate(split.train.sequences).tolist())
    assert (split.train.item_counts()[list(cold)] == 0).all()
    assert len(split.test) > 0
    assert set(split.test.targets.tolist()) <= cold
    assert set(split.valid.targets.tolist()) <= cold
    # Exactly the leave-one-out test cases whose target is cold, histories untouched.
    loo = leave_one_out(data)
    expected = [k for k, t in enumerate(loo.test.targets) if t in cold]
    assert split.test.users.tolist() == loo.test.users[expected].tolist()
    for mine, theirs in zip(
        split.test.histories, [loo.test.histories[k] for k in expected], strict=True
    ):
        assert mine.tolist() == theirs.tolist()
    # Seeded: the same seed draws the same items, another seed (here) different ones.
    assert cold_start_split(data, seed=3).held_out_items.tolist() == sorted(cold)
    assert cold_start_split(data, seed=4).held_out_items.tolist() != sorted(cold)


def test_train_data_matrices() -> None:
    train = TrainData(
        sequences=(np.array([0, 2, 2]), np.array([], dtype=np.int64), np.array([1])),
        timestamps=(np.zeros(3), np.zeros(0), np.zeros(1)),
        n_items=4,
    )
    assert train.item_counts().tolist() == [1, 1, 2, 0]
    assert train.user_item_matrix().toarray().tolist() == [
        [1, 0, 1, 0],
        [0, 0, 0, 0],
        [0, 1, 0, 0],
    ]


# --- metrics -------------------------------------------------------------------------------


def test_metrics_by_hand() -> None:
    # Targets at rank 1, 3 and 11 (nothing tied).
    above = np.array([0, 2, 10])
    ties = np.zeros(3, dtype=np.int64)
    per_case = per_case_metrics(above, ties, 10)
    assert per_case["hr"].tolist() == [1.0, 1.0, 0.0]
    assert per_case["ndcg"].tolist() == pytest.approx([1.0, 0.5, 0.0])  # 1/log2(3 + 1)
    assert per_case["mrr"].tolist() == pytest.approx([1.0, 1 / 3, 0.0])
    mean = ranking_metrics(above, ties, ks=(1, 10))
    assert mean == pytest.approx(
        {
            "hr@1": 1 / 3,
            "ndcg@1": 1 / 3,
            "mrr@1": 1 / 3,
            "hr@10": 2 / 3,
            "ndcg@10": 1.5 / 3,
            "mrr@10": (4 / 3) / 3,
            "n_cases": 3.0,
        }
    )


def test_ties_are_broken_uniformly_in_expectation() -> None:
    # Tied with one other item at the top: rank 1 or 2, each with probability 1/2.
    per_case = per_case_metrics(np.array([0]), np.array([1]), 1)
    assert per_case["hr"][0] == 0.5
    ndcg10 = per_case_metrics(np.array([0]), np.array([1]), 10)["ndcg"][0]
    assert ndcg10 == pytest.approx((1 + 1 / math.log2(3)) / 2)
    # A constant scorer over 100 items: rank uniform on 1..100.
    hr10 = per_case_metrics(np.array([0]), np.array([99]), 10)["hr"][0]
    assert hr10 == pytest.approx(0.1)


def test_no_cases_give_nan_not_zero() -> None:
    result = ranking_metrics(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert math.isnan(result["hr@10"]) and result["n_cases"] == 0.0


def test_history_is_masked_but_never_the_target() -> None:
    cases = _cases([[0, 1], [0, 3]], targets=[2, 3], n_items=5)
    # History items score highest; case 2 repeats its history item 3 as the target.
    scores = [[9.0, 8.0, 7.0, 1.0, 0.0], [9.0, 0.0, 1.0, 8.0, 2.0]]

    above, ties = target_ranks(_fixed(scores), cases)
    assert above.tolist() == [0, 0] and ties.tolist() == [0, 0]

    above, _ = target_ranks(_fixed(scores), cases, exclude_history=False)
    assert above.tolist() == [2, 1]


def test_chunking_does_not_change_ranks() -> None:
    rng = np.random.default_rng(0)
    n_cases, n_items = 23, 17
    scores = rng.integers(0, 5, size=(n_cases, n_items)).astype(float).tolist()  # many ties
    histories = [rng.choice(n_items, size=int(rng.integers(0, 6))).tolist() for _ in scores]
    cases = _cases(histories, rng.integers(0, n_items, size=n_cases).tolist(), n_items)
    whole = target_ranks(_fixed(scores), cases, chunk_size=1000)
    for chunk in (1, 4, 7):
        parts = target_ranks(_fixed(scores), cases, chunk_size=chunk)
        assert whole[0].tolist() == parts[0].tolist()
        assert whole[1].tolist() == parts[1].tolist()


def test_bad_scores_are_reported() -> None:
    cases = _cases([[0]], [1], n_items=3)
    with pytest.raises(ValueError, match=r"expected \(1, 3\)"):
        target_ranks(_fixed([[0.0, 1.0]]), cases)
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(_fixed([[0.0, math.nan, 1.0]]), cases)


def test_evaluate_picks_the_stage(make_interactions: MakeInteractions) -> None:
    class AlwaysE:
        """Scores item "e" first whatever the history."""

        def __init__(self, item: int, n_items: int) -> None:
            self.item, self.n_items = item, n_items

        def fit(self, data: TrainData) -> None: ...

        def score(self, histories: list[np.ndarray]) -> np.ndarray:
            out = np.zeros((len(histories), self.n_items))
            out[:, self.item] = 1.0
            return out

    data = make_interactions({"u": "abcde"})
    split = leave_one_out(data)
    model = AlwaysE(data.item_index["e"], data.n_items)
    assert isinstance(model, SequentialRecommender)
    assert evaluate(model, split, ks=(1,))["hr@1"] == 1.0  # test target: "e"
    assert evaluate(model, split.test, ks=(1,))["mrr@1"] == 1.0
    # Validation target "d" comes second, after "e" (a, b, c are masked history).
    assert evaluate(model, split, ks=(1, 2), stage="valid") == pytest.approx(
        {
            "hr@1": 0.0,
            "ndcg@1": 0.0,
            "mrr@1": 0.0,
            "hr@2": 1.0,
            "ndcg@2": 1 / math.log2(3),
            "mrr@2": 0.5,
            "n_cases": 1.0,
        }
    )


# --- baselines -----------------------------------------------------------------------------


@pytest.fixture
def obvious(make_interactions: MakeInteractions) -> tuple[Interactions, TrainData]:
    """Everyone watches "x" then "y"; "p" is the most popular item; "z" nobody watched."""
    data = make_interactions(
        {f"u{k}": "pxy" for k in range(5)} | {f"v{k}": "pq" for k in range(3)}, catalog="pxyqz"
    )
    return data, TrainData(data.sequences, data.timestamps, data.n_items)


def test_popularity_ranks_the_most_frequent_first(
    obvious: tuple[Interactions, TrainData],
) -> None:
    data, train = obvious
    model = PopularityRecommender()
    model.fit(train)
    scores = model.score([np.array([], dtype=np.int64), np.array([1])])
    assert scores.shape == (2, data.n_items)
    assert int(scores[0].argmax()) == data.item_index["p"]
    assert scores[0, data.item_index["z"]] == 0.0


def test_itemknn_ranks_the_co_watched_item_first(
    obvious: tuple[Interactions, TrainData],
) -> None:
    data, train = obvious
    model = ItemKNNRecommender(neighbours=2, history_length=1)
    model.fit(train)
    scores = model.score([np.array([data.item_index["x"]])])
    assert int(scores[0].argmax()) == data.item_index["y"]
    assert scores[0, data.item_index["x"]] == 0.0  # no self-similarity
    assert scores[0, data.item_index["z"]] == 0.0  # never seen: no signal
    # Cosine by hand: x and y share all 5 users; x and p share 5 of p's 8.
    similarity = model.similarity
    assert similarity is not None
    x, y, p = (data.item_index[c] for c in "xyp")
    assert similarity[x, y] == pytest.approx(1.0)
    assert similarity[x, p] == pytest.approx(5 / math.sqrt(5 * 8))


def test_itemknn_keeps_only_the_top_neighbours(obvious: tuple[Interactions, TrainData]) -> None:
    _, train = obvious
    model = ItemKNNRecommender(neighbours=1)
    model.fit(train)
    assert model.similarity is not None
    assert ((model.similarity > 0).sum(axis=1) <= 1).all()


def test_markov_ranks_the_successor_first(obvious: tuple[Interactions, TrainData]) -> None:
    data, train = obvious
    model = MarkovRecommender()
    model.fit(train)
    scores = model.score([np.array([data.item_index["p"], data.item_index["x"]])])
    assert int(scores[0].argmax()) == data.item_index["y"]
    # After "y" nothing was ever watched: back off to popularity.
    scores = model.score([np.array([data.item_index["y"]])])
    assert int(scores[0].argmax()) == data.item_index["p"]


def test_recency_weights() -> None:
    weights = recency_weights([np.array([3, 1, 2]), np.array([], np.int64)], 4, 2, 0.5)
    assert weights.toarray().tolist() == [[0.0, 0.5, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    repeated = recency_weights([np.array([1, 1])], 2, None, 0.5)
    assert repeated.toarray().tolist() == [[0.0, 1.5]]


@pytest.mark.parametrize("make", [PopularityRecommender, ItemKNNRecommender, MarkovRecommender])
def test_baselines_follow_the_protocol(make: Callable[[], SequentialRecommender]) -> None:
    model = make()
    assert isinstance(model, SequentialRecommender)
    with pytest.raises(RuntimeError, match="fit"):
        model.score([np.array([0])])


def test_sequential_baselines_beat_popularity_through_the_harness(
    make_interactions: MakeInteractions,
) -> None:
    # Group A's test case is "after abcdefg, what?": only group B ever went g -> h, while
    # group C makes p and q the most popular items.
    data = make_interactions(
        {f"a{k}": "abcdefgh" for k in range(4)}
        | {f"b{k}": "ghxy" for k in range(4)}
        | {f"c{k}": "pqrs" for k in range(6)},
        catalog="abcdefghpqrsxyz",
    )
    split = leave_one_out(data)
    group_a = split.test.select(np.char.startswith(np.array(data.user_ids), "a")[split.test.users])
    assert len(group_a) == 4
    for make in (ItemKNNRecommender, MarkovRecommender):
        model = make()
        model.fit(split.train)
        assert evaluate(model, group_a, ks=(1,))["hr@1"] == 1.0
    popularity = PopularityRecommender()
    popularity.fit(split.train)
    assert evaluate(popularity, group_a, ks=(1,))["hr@1"] == 0.0


# --- orchestration and report ------------------------------------------------------------


def test_grid_search_ranks_by_validation(make_interactions: MakeInteractions) -> None:
    data = make_interactions({f"u{k}": "abcdef"[k % 3 :] for k in range(9)})
    ranked = grid_search(MarkovRecommender, {"history_length": [1, 2]}, leave_one_out(data))
    assert [p["history_length"] for p, _ in ranked] in ([1, 2], [2, 1])
    assert ranked[0][1]["ndcg@10"] >= ranked[1][1]["ndcg@10"]
    with pytest.raises(ValueError, match="unknown metric"):
        grid_search(MarkovRecommender, {"decay": [1.0]}, leave_one_out(data), metric="auc")


def test_run_benchmark_covers_every_protocol(make_interactions: MakeInteractions) -> None:
    rng = np.random.default_rng(5)
    letters = list("abcdefghijklmnopqrst")
    data = make_interactions(
        {f"u{k}": "".join(rng.choice(letters, size=10)) for k in range(30)},
        catalog="".join(letters),
    )
    runs = run_benchmark(data, {"Pop": PopularityRecommender}, cold_fraction=0.2, seed=1)
    assert [r.name for r in runs] == ["leave_one_out", "leave_one_out_unmasked", "cold_start"]
    assert runs[0].results["Pop"]["n_cases"] == 30
    assert runs[2].results["Pop"]["hr@10"] == 0.0  # held-out items never counted
    assert set(runs[0].timings["Pop"]) == {"fit_s", "eval_s"}


def test_report_table_is_markdown() -> None:
    table = report_table(
        {
            "Pop": {"hr@10": 0.08481, "ndcg@10": 0.04412, "n_cases": 943.0},
            "Cold": {"hr@10": float("nan"), "n_cases": 0.0},
        }
    )
    assert table.splitlines() == [
        "| model | hr@10 | ndcg@10 | n_cases |",
        "|---|---:|---:|---:|",
        "| Pop | 0.0848 | 0.0441 | 943 |",
        "| Cold | n/a | n/a | 0 |",
    ]


def test_json_safe_replaces_non_finite_floats() -> None:
    payload = json_safe({"a": [1.0, float("nan")], "b": {"c": float("inf")}})
    assert json.dumps(payload, allow_nan=False) == '{"a": [1.0, null], "b": {"c": null}}'


def test_package_docstring_example_runs() -> None:
    result = doctest.testmod(models.offline, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0
