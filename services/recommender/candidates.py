"""Candidate generation: co-visitation neighbours, trending and popular items, minus seen."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from models.candidate_features import NUM_FEATURES
from services.recommender.state import ItemStats, UserState


@dataclass
class Candidates:
    """One click's candidates, their feature rows and why each was proposed."""

    items: list[str] = field(default_factory=list)
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_FEATURES), np.float32))
    sources: list[tuple[str, str | None]] = field(default_factory=list)  # (kind, source item)


def generate(user: UserState, stats: ItemStats, limit: int) -> Candidates:
    seen = set(user.seen)
    chosen: dict[str, tuple[str, str | None]] = {}
    neighbours = stats.neighbours(user.recent, limit * 2)
    for item, (_, source) in neighbours.items():
        if item not in seen and len(chosen) < limit:
            chosen[item] = ("covisitation", source)
    # Trending and popular items fill the list, so new users get an answer too.
    for kind, pool in (
        ("trending", stats.top_trending(limit + len(seen))),
        ("popular", stats.top_popular(limit + len(seen))),
    ):
        for item in pool:
            if len(chosen) >= limit:
                break
            if item not in seen and item not in chosen:
                chosen[item] = (kind, None)
    items = list(chosen)
    feats = np.zeros((len(items), NUM_FEATURES), np.float32)
    for i, item in enumerate(items):
        covis = neighbours.get(item, (0.0, ""))[0]
        feats[i] = (
            math.log1p(covis),
            math.log1p(stats.popularity.get(item, 0)),
            math.log1p(stats.trending(item)),
        )
    return Candidates(items=items, features=feats, sources=[chosen[i] for i in items])


def pad(batch: list[Candidates]) -> np.ndarray:
    """Stack candidate features into one [batch, max_candidates, F] tensor (zeros pad)."""
    width = max((len(c.items) for c in batch), default=0) or 1
    out = np.zeros((len(batch), width, NUM_FEATURES), np.float32)
    for i, c in enumerate(batch):
        out[i, : len(c.items)] = c.features
    return out
