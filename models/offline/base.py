"""The one interface the harness needs from a sequential recommender."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from models.offline.data import IntArray
from models.offline.splits import TrainData


@runtime_checkable
class SequentialRecommender(Protocol):
    """Fit on training sequences, then score the whole catalog for each history.

    Histories are arrays of dense item ids, oldest first, and may contain items absent from
    training. ``score`` returns a ``[len(histories), n_items]`` float matrix, higher is
    better; the harness masks items already in a history, so a model need not.
    """

    def fit(self, data: TrainData) -> None: ...

    def score(self, histories: list[IntArray]) -> np.ndarray: ...
