"""Candidate generation: the union of several sources, minus what the user has seen.

Sources, each with a share of the list so no single one crowds the others out:
co-visitation neighbours of the user's recent items (what people clicked next), items
whose text is nearest the user's embedding (how new items get in before anyone clicks
them), the user's segment's favourites, then trending and popular items to fill.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import filterfalse

import numpy as np

from models.candidate_features import NUM_FEATURES
from services.recommender.covis import Neighbours
from services.recommender.state import ItemStats, UserState

# Shares of the candidate list per source; whatever a source leaves unused is filled
# by trending and popular items, then by more co-visitation neighbours.
COVIS_SHARE, SEMANTIC_SHARE, SEGMENT_SHARE = 0.5, 0.25, 0.15


@dataclass
class Candidates:
    """One click's candidates, their feature rows and the evidence behind each."""

    items: list[str] = field(default_factory=list)
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_FEATURES), np.float32))
    sources: list[set[str]] = field(default_factory=list)
    # The user's co-visitation neighbours, for the explanations' "because you clicked".
    neighbours: Neighbours | None = None


@dataclass(frozen=True)
class SegmentView:
    """What candidate generation needs of the user's segment (None: segments are off)."""

    segment: int
    favourites: Sequence[str]
    affinities: Callable[[Sequence[str]], np.ndarray]  # items -> log1p decayed segment clicks


def generate(
    user: UserState,
    stats: ItemStats,
    limit: int,
    semantic: Sequence[tuple[str, float]] = (),
    segment: SegmentView | None = None,
) -> Candidates:
    seen = set(user.seen)

    def unseen(pool: Iterable[str]) -> Iterator[str]:
        return filterfalse(seen.__contains__, pool)  # in C: most of a heavy user's pools

    chosen: dict[str, set[str]] = {}

    def take(pool: Iterable[str], source: str, cap: int) -> int:
        """Add ``pool``'s unseen items (tagging those already in) until ``chosen`` has
        ``cap``; returns how many unseen items of ``pool`` were read.

        Hot: for a heavy user most of the trending and popular lists are seen, so those
        are skipped in C (``filterfalse``) and only the rest reach this loop.
        """
        read = 0
        for item in unseen(pool):
            if len(chosen) >= cap:
                break
            read += 1
            sources = chosen.get(item)
            if sources is None:
                chosen[item] = {source}
            else:
                sources.add(source)
        return read

    neighbours = stats.neighbours(user.recent, limit)
    covis_items = list(unseen(neighbours.items))
    taken = take(covis_items, "covisitation", round(limit * COVIS_SHARE))
    take([item for item, _ in semantic], "semantic", len(chosen) + round(limit * SEMANTIC_SHARE))
    if segment is not None:
        take(segment.favourites, "segment", len(chosen) + round(limit * SEGMENT_SHARE))
    take(stats.top_trending(limit + len(seen)), "trending", limit)
    take(stats.top_popular(limit + len(seen)), "popular", limit)
    # Co-visitation neighbours beyond their share fill whatever is still free.
    take(covis_items[taken:], "covisitation", limit)
    items = list(chosen)
    # Column by column, by item column: one id lookup per candidate, then gathers (a dict
    # lookup per candidate and feature was a quarter of this function's time).
    feats = np.empty((len(items), NUM_FEATURES), np.float32)
    ids = stats.item_ids(items)
    feats[:, 0] = neighbours.scores_of(ids)
    feats[:, 1] = stats.popularity_of(ids)
    feats[:, 2] = stats.trending_of(ids)
    np.log1p(feats[:, :3], out=feats[:, :3])
    feats[:, 3] = segment.affinities(items) if segment is not None else 0.0
    return Candidates(
        items=items,
        features=feats,
        sources=[chosen[i] for i in items],
        neighbours=neighbours,
    )


def pad_features(batch: Sequence[Candidates], width: int) -> np.ndarray:
    """Stack candidate features into one [batch, width, F] tensor (zeros pad)."""
    out = np.zeros((len(batch), width, NUM_FEATURES), np.float32)
    for i, c in enumerate(batch):
        out[i, : len(c.items)] = c.features
    return out
