"""The per-candidate feature vector, defined once for the worker, the ranker and the fallback."""

from __future__ import annotations

import numpy as np

# Order matters: it is the last axis of the ranker's SIDE input (models/ranker.py).
# numpy only, no torch: the worker imports this.
FEATURE_NAMES: tuple[str, ...] = ("covisitation", "popularity", "trending", "segment_affinity")
# covisitation: log1p of recency-weighted co-visits with the user's recent items
# popularity: log1p of all clicks on the item
# trending: log1p of exponentially decayed recent clicks (event time)
# segment_affinity: log1p of decayed clicks on the item by the user's segment
NUM_FEATURES = len(FEATURE_NAMES)
TRENDING = FEATURE_NAMES.index("trending")
POPULARITY = FEATURE_NAMES.index("popularity")

# Hand-set weights of the degraded-mode fallback (Triton unreachable): co-visitation
# first, then what is hot, so losing Triton changes quality gracefully, not the
# ranking's character.
BASELINE_WEIGHTS: tuple[float, ...] = (1.0, 0.15, 0.35, 0.25)


def model_side(features: np.ndarray) -> np.ndarray:
    """The SIDE tensor the ranker reads, from the worker's feature rows (last axis 4).

    The ranker is trained offline on sequences without a clock, where "trending" is
    popularity (models/ranker_training.py); feeding it live decayed trending would hand
    it a feature it never saw. Trending still picks candidates and writes explanations.
    """
    side = np.array(features, dtype=np.float32, copy=True)
    side[..., TRENDING] = side[..., POPULARITY]
    return side
