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
SEGMENT_AFFINITY = FEATURE_NAMES.index("segment_affinity")

# Weights of the degraded-mode fallback (Triton unreachable): co-visitation, with the
# segment's taste to break its ties. Chosen on the ml-100k replay's validation clicks
# (70-80% of the stream, before the judged 20%) with the in-process replay: NDCG@10
# 0.1012 against 0.0968 for the earlier hand-set (1.0, 0.15, 0.35, 0.25); popularity and
# trending only lowered it (docs/BENCHMARKS.md). Candidates without co-visits keep
# candidate order: trending, then popular.
BASELINE_WEIGHTS: tuple[float, ...] = (1.0, 0.0, 0.0, 0.25)


def model_side(features: np.ndarray) -> np.ndarray:
    """The SIDE tensor the ranker reads, from the worker's feature rows (last axis 4).

    The ranker is trained offline on sequences without a clock, where "trending" is
    popularity (models/ranker_training.py); feeding it live decayed trending would hand
    it a feature it never saw. Trending still picks candidates and writes explanations.
    """
    side = np.array(features, dtype=np.float32, copy=True)
    side[..., TRENDING] = side[..., POPULARITY]
    # Offline there are no segments, so the ranker only ever saw 0 here; its weights for
    # a non-zero value are untrained. Segment affinity picks candidates, writes
    # explanations and weighs in the fallback; the ranker gets it once trained with it.
    side[..., SEGMENT_AFFINITY] = 0.0
    return side
