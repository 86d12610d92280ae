"""Pick hyperparameters on validation cases, never on test."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from models.offline.base import SequentialRecommender
from models.offline.metrics import evaluate
from models.offline.splits import Split


def grid_search(
    make: Callable[..., SequentialRecommender],
    grid: Mapping[str, Sequence[Any]],
    split: Split,
    *,
    metric: str = "ndcg@10",
    ks: Sequence[int] = (10,),
) -> list[tuple[dict[str, Any], dict[str, float]]]:
    """Fit ``make(**params)`` on ``split.train`` for every grid point, score ``split.valid``.

    Returns ``(params, validation metrics)`` pairs, best ``metric`` first.
    """
    names = list(grid)
    results = []
    for values in itertools.product(*(grid[name] for name in names)):
        params = dict(zip(names, values, strict=True))
        model = make(**params)
        model.fit(split.train)
        results.append((params, evaluate(model, split, ks, stage="valid")))
    if results and metric not in results[0][1]:
        raise ValueError(f"unknown metric {metric!r}; have {sorted(results[0][1])}")
    results.sort(key=lambda pair: pair[1][metric], reverse=True)
    return results
