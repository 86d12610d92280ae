"""The per-candidate feature vector the scorer reads, defined once for worker and model."""

from __future__ import annotations

# Order matters: it is the last axis of the scorer's FEATURES input.
FEATURE_NAMES: tuple[str, ...] = (
    "covisitation",  # log1p of recency-weighted co-visits with the user's recent items
    "popularity",  # log1p of all-time clicks on the item
    "trending",  # log1p of exponentially decayed recent clicks on the item
)
NUM_FEATURES = len(FEATURE_NAMES)

# Hand-set weights of the first scorer, also used by the degraded-mode fallback so
# that losing Triton changes quality gracefully, not the ranking's character.
BASELINE_WEIGHTS: tuple[float, ...] = (1.0, 0.15, 0.35)
