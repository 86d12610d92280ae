"""Offline evaluation of sequential recommenders, following RecBole's ml-100k protocol.

Build :class:`Interactions` from clicks, split them (:func:`leave_one_out`,
:func:`cold_start_split`, :func:`time_split`), fit a :class:`SequentialRecommender` on the
split's ``train`` and :func:`evaluate` it by full ranking. ``python -m models.offline``
runs the baselines on ml-100k.

>>> import numpy as np
>>> data = Interactions.from_arrays(
...     users=["u"] * 4 + ["v"] * 4,
...     items=["a", "b", "c", "d", "a", "b", "c", "d"],
...     timestamps=[1, 2, 3, 4, 1, 2, 3, 4],
... )
>>> split = leave_one_out(data)
>>> model = MarkovRecommender()
>>> model.fit(split.train)
>>> evaluate(model, split)["hr@10"]
1.0
"""

from __future__ import annotations

from models.offline.base import SequentialRecommender
from models.offline.baselines import (
    ItemKNNRecommender,
    MarkovRecommender,
    PopularityRecommender,
)
from models.offline.benchmark import ProtocolRun, default_baselines, load_ml100k, run_benchmark
from models.offline.data import Interactions
from models.offline.metrics import evaluate, ranking_metrics, target_ranks
from models.offline.report import ANCHORS, report_table
from models.offline.splits import (
    EvalCases,
    Split,
    TrainData,
    cold_start_split,
    leave_one_out,
    time_split,
)
from models.offline.tuning import grid_search

__all__ = [
    "ANCHORS",
    "EvalCases",
    "Interactions",
    "ItemKNNRecommender",
    "MarkovRecommender",
    "PopularityRecommender",
    "ProtocolRun",
    "SequentialRecommender",
    "Split",
    "TrainData",
    "cold_start_split",
    "default_baselines",
    "evaluate",
    "grid_search",
    "leave_one_out",
    "load_ml100k",
    "ranking_metrics",
    "report_table",
    "run_benchmark",
    "target_ranks",
    "time_split",
]
