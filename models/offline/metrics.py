"""Full-ranking evaluation of next-item prediction: HR, NDCG and MRR at k, single target.

Every case scores the whole catalog; items already in the case's history are set to -inf
(the target never is, so a repeat consumption still counts); the target's rank then gives
RecBole's metrics: HR@k = [rank <= k], NDCG@k = 1/log2(rank + 1) and MRR@k = 1/rank when
rank <= k, else 0.

Ties are broken uniformly at random, in expectation: a target tied with ``e`` other items,
below ``g`` items, is equally likely at each rank ``g+1 .. g+e+1``, and its metrics are
averaged over those ranks. Any fixed tie-break would be unfair: "target first" hands a
constant scorer HR = 1, "target last" punishes popularity baselines for tied counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from models.offline.base import SequentialRecommender
from models.offline.data import FloatArray, IntArray
from models.offline.splits import EvalCases, Split

ScoreFn = Callable[[list[IntArray]], np.ndarray]
"""Scores a chunk of histories: returns ``[len(histories), n_items]`` floats."""

METRICS = ("hr", "ndcg", "mrr")


def target_ranks(
    score: ScoreFn,
    cases: EvalCases,
    *,
    exclude_history: bool = True,
    chunk_size: int = 256,
) -> tuple[IntArray, IntArray]:
    """Per case: how many items score strictly above the target, and how many tie with it.

    ``score`` is called on chunks of ``chunk_size`` histories, so memory stays at
    ``chunk_size x n_items`` floats however many cases there are.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    above = np.zeros(len(cases), dtype=np.int64)
    ties = np.zeros(len(cases), dtype=np.int64)
    for start in range(0, len(cases), chunk_size):
        stop = min(start + chunk_size, len(cases))
        histories = list(cases.histories[start:stop])
        targets = cases.targets[start:stop]
        # A copy in float64: the mask writes into it, and a model may return a view of its
        # own state (or float32, which widens without changing any comparison).
        scores = np.array(score(histories), dtype=np.float64)
        _check_scores(scores, len(histories), cases.n_items)
        rows = np.arange(stop - start)
        target_scores = scores[rows, targets]
        if exclude_history:
            lengths = np.fromiter((len(h) for h in histories), np.int64, len(histories))
            if lengths.sum():
                scores[np.repeat(rows, lengths), np.concatenate(histories)] = -np.inf
            scores[rows, targets] = target_scores  # the target is never masked
        column = target_scores[:, None]
        above[start:stop] = (scores > column).sum(axis=1)
        ties[start:stop] = (scores == column).sum(axis=1) - 1
    return above, ties


def per_case_metrics(above: IntArray, ties: IntArray, k: int) -> dict[str, FloatArray]:
    """Expected HR@k, NDCG@k and MRR@k of each case, given :func:`target_ranks`' output."""
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    positions = np.arange(1, k + 1, dtype=np.float64)
    # cumulative[m][r] = sum of the metric's gain over ranks 1..r (capped at k).
    cumulative = {
        "hr": np.concatenate(([0.0], np.cumsum(np.ones(k)))),
        "ndcg": np.concatenate(([0.0], np.cumsum(1.0 / np.log2(positions + 1.0)))),
        "mrr": np.concatenate(([0.0], np.cumsum(1.0 / positions))),
    }
    first = np.minimum(above, k)  # ranks above the target's first possible rank, capped
    last = np.minimum(above + ties + 1, k)
    spread = (ties + 1).astype(np.float64)
    return {name: (c[last] - c[first]) / spread for name, c in cumulative.items()}


def ranking_metrics(above: IntArray, ties: IntArray, ks: Sequence[int] = (10,)) -> dict[str, float]:
    """Mean metrics over cases as ``{"hr@10": ..., "ndcg@10": ..., "mrr@10": ..., "n_cases"}``.

    With no cases the metrics are NaN (not 0: "no evidence" is not "always wrong").
    """
    result: dict[str, float] = {}
    for k in ks:
        for name, values in per_case_metrics(above, ties, k).items():
            result[f"{name}@{k}"] = float(values.mean()) if len(values) else float("nan")
    result["n_cases"] = float(len(above))
    return result


def evaluate(
    model: SequentialRecommender,
    split: Split | EvalCases,
    ks: Sequence[int] = (10,),
    *,
    stage: Literal["valid", "test"] = "test",
    exclude_history: bool = True,
    chunk_size: int = 256,
) -> dict[str, float]:
    """Full-ranking metrics of an already fitted ``model`` on a split's ``stage`` cases.

    ``exclude_history=False`` ranks history items too, as RecBole does for sequential
    models (its full-sort loader passes no history mask for them); the default masks them.
    """
    cases = split if isinstance(split, EvalCases) else getattr(split, stage)
    above, ties = target_ranks(
        model.score, cases, exclude_history=exclude_history, chunk_size=chunk_size
    )
    return ranking_metrics(above, ties, ks)


def _check_scores(scores: np.ndarray, n_rows: int, n_items: int) -> None:
    if scores.shape != (n_rows, n_items):
        raise ValueError(
            f"score() returned shape {scores.shape} for {n_rows} histories; "
            f"expected ({n_rows}, {n_items}): one row per history, one column per catalog item"
        )
    if np.isnan(scores).any():
        raise ValueError("score() returned NaN; use -inf for items that must never be ranked")
