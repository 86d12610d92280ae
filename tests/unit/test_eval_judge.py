"""Beyond HR: intra-list diversity, withheld-item (cold) rates, verdicts, rolling HR."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from services.contract.events import ClickEvent
from services.eval.judge import (
    first_clicks,
    judge,
    mean_intra_list_diversity,
    rolling_hit_rate,
    split_pairs,
    verdicts,
)
from services.eval.protocol import Pair, consecutive_pairs
from services.recommender.embeddings import EmbeddingIndex

T0 = datetime(1998, 1, 1, tzinfo=UTC)


def clicks(*pairs: tuple[str, str]) -> list[ClickEvent]:
    return [
        ClickEvent(event_id=f"e{n}", user_id=user, item_id=item, ts=T0)
        for n, (user, item) in enumerate(pairs)
    ]


def index(**vectors: list[float]) -> EmbeddingIndex:
    out = EmbeddingIndex(dim=2)
    for item, vector in vectors.items():
        out.upsert(item, np.asarray(vector, np.float32))
    return out


def test_intra_list_diversity_is_the_mean_over_lists_and_skips_unknown_items() -> None:
    vectors = index(a=[1, 0], b=[1, 0], c=[0, 1], d=[-1, 0])
    # [a, b]: twins, distance 0. [a, c]: orthogonal, 1. [a, d]: opposite, 2.
    assert mean_intra_list_diversity([["a", "b"]], vectors) == pytest.approx(0.0)
    assert mean_intra_list_diversity([["a", "c"], ["a", "d"]], vectors) == pytest.approx(1.5)
    # [a, b, c]: pairs ab 0, ac 1, bc 1 -> 2/3; an item without a vector is left out.
    assert mean_intra_list_diversity([["a", "b", "c", "zz"]], vectors) == pytest.approx(2 / 3)
    assert mean_intra_list_diversity([], vectors) is None


def test_pairs_split_into_warm_withheld_and_withheld_first_clicks() -> None:
    stream = clicks(
        ("u1", "a"),  # e0: warm-up
        ("u1", "b"),  # e1: test from here
        ("u1", "x"),  # e2: x withheld, first click on it -> pair (e1 -> e2)
        ("u2", "a"),  # e3
        ("u2", "x"),  # e4: x again, not its first click -> pair (e3 -> e4)
        ("u2", "c"),  # e5: warm -> pair (e4 -> e5)
    )
    pairs = consecutive_pairs(stream, split=1)
    subsets = split_pairs(pairs, stream, withheld={"x"})
    assert [p.event_id for p in subsets.withheld] == ["e1", "e3"]
    assert [p.event_id for p in subsets.withheld_first_click] == ["e1"]
    assert [p.event_id for p in subsets.warm] == ["e4"]
    assert subsets.sizes() == {"warm": 1, "withheld": 2, "withheld_first_click": 1}
    assert first_clicks(stream) == {"e0", "e1", "e2", "e5"}


def test_judge_gives_cold_hr_on_withheld_targets_coverage_and_diversity() -> None:
    pairs = [
        Pair("e1", "u", "x", "n1"),  # withheld target, found at rank 2
        Pair("e2", "u", "y", "n2"),  # withheld target, missed
        Pair("e3", "v", "a", "n3"),  # warm target, found at rank 1
    ]
    answers = {"e1": ["a", "x"], "e2": ["a", "b"], "e3": ["a", "c"]}
    subsets = split_pairs(pairs, [], withheld={"x", "y"})
    vectors = index(a=[1, 0], b=[1, 0], c=[0, 1], x=[0, 1])
    catalog = ["a", "b", "c", "x", "y", *"defgh"]
    figures = judge(pairs, answers, 10, catalog=catalog, subsets=subsets, vectors=vectors)
    assert figures["hr@10"] == pytest.approx(2 / 3)
    assert figures["mrr@10"] == pytest.approx((0.5 + 1.0) / 3, abs=1e-6)
    assert figures["withheld"]["hr@10"] == 0.5 and figures["withheld"]["pairs"] == 2
    assert figures["warm"]["hr@10"] == 1.0
    assert figures["coverage"] == pytest.approx(4 / 10)  # a, x, b, c
    # An item from outside the catalog (another replay's, on a shared stack) is not coverage.
    foreign = judge(pairs, {**answers, "e3": ["a", "other-run:z"]}, 10, catalog, subsets)
    assert foreign["coverage"] == pytest.approx(3 / 10)  # a, x, b
    assert figures["intra_list_diversity"] == pytest.approx((1 + 0 + 1) / 3, abs=1e-6)
    # A recommender that never shows a withheld item has a cold HR of 0.
    blind = judge(pairs, {"e1": ["a"], "e2": ["a"], "e3": ["a"]}, 10, catalog, subsets, vectors)
    assert blind["withheld"]["hr@10"] == 0.0 and blind["warm"]["hr@10"] == 1.0


def test_verdicts_say_where_the_system_does_not_beat_a_baseline() -> None:
    system = {"hr@10": 0.2, "ndcg@10": 0.1, "mrr@10": 0.05, "coverage": 0.3}
    base = {"hr@10": 0.1, "ndcg@10": 0.1, "mrr@10": 0.07, "coverage": 0.5}
    row = verdicts({"system": system, "b": base}, "system", ["b"], 10)["b"]
    assert row["hr"] == {"system": 0.2, "baseline": 0.1, "beats": True}
    assert row["ndcg"]["beats"] is False  # a tie is not a win
    assert row["mrr"]["beats"] is False and row["coverage"]["beats"] is False
    assert "withheld_hr" not in row  # no figure on either side: not compared


def test_rolling_hit_rate_is_a_sliding_window_share_of_hits() -> None:
    ranks = {"sys": [1, 0, 3, 0, 0, 0, 2, 1], "base": [0] * 8}
    out = rolling_hit_rate(ranks, window=4, points=10)
    assert out["window"] == 4 and out["x"] == [4, 5, 6, 7, 8]
    assert out["models"]["sys"] == [0.5, 0.25, 0.25, 0.25, 0.5]
    assert out["models"]["base"] == [0.0] * 5
    assert rolling_hit_rate({"sys": []})["x"] == []
