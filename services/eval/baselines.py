"""Online baselines replayed in-process on the very stream the system gets.

Each sees the clicks one by one in stream order and answers after each with its top k,
so its figures under the pair protocol compare directly with the system's. They are
defined here, not borrowed from the worker, so that changing the worker never moves
the yardstick. Ties are broken by first appearance in the stream (earlier first), which
keeps every figure deterministic whatever the item ids look like.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from services.contract.events import ClickEvent

# Co-visitation links a click to the user's previous few clicks only, weighted
# 1/(1 + distance); the same rule the worker counts with (services/recommender/state.py).
COVIS_WINDOW = 5
# An answer sums the neighbours of the user's latest few items, weighted the same way.
COVIS_HISTORY = 10
RECENT_LIMIT = 50


class OnlineRecommender(Protocol):
    """Learns from each click as it comes and answers with the top k for a user."""

    name: str

    def observe(self, click: ClickEvent) -> None: ...

    def recommend(self, user_id: str, k: int) -> list[str]: ...


class _Counts:
    """Click counts per item and the order in which items first appeared (for ties)."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.first_seen: dict[str, int] = {}

    def add(self, item_id: str) -> None:
        self.count[item_id] += 1
        self.first_seen.setdefault(item_id, len(self.first_seen))

    def top(self, k: int, exclude: set[str], also: Iterable[str] = ()) -> list[str]:
        """The k most clicked items not in ``exclude`` nor ``also``."""
        taken = set(also)
        pool = (i for i in self.count if i not in exclude and i not in taken)
        first = self.first_seen
        return heapq.nlargest(k, pool, key=lambda i: (self.count[i], -first[i]))


class Popularity:
    """The k most clicked items so far that the user has not clicked."""

    name = "popularity"

    def __init__(self) -> None:
        self.counts = _Counts()
        self.seen: defaultdict[str, set[str]] = defaultdict(set)

    def observe(self, click: ClickEvent) -> None:
        self.counts.add(click.item_id)
        self.seen[click.user_id].add(click.item_id)

    def recommend(self, user_id: str, k: int) -> list[str]:
        return self.counts.top(k, self.seen[user_id])


class CoVisitationKNN:
    """Online item-kNN on co-visitation counts; popular items fill a short list.

    A click on ``b`` adds ``1/(1 + d)`` to the co-visitation of ``b`` with each of the
    user's ``window`` previous items (``d`` = 0 for the latest). The answer scores every
    item by the co-visitation with the user's ``history`` latest items, each weighted
    ``1/(1 + d)`` again, minus what the user has clicked.
    """

    name = "covisitation_knn"

    def __init__(self, window: int = COVIS_WINDOW, history: int = COVIS_HISTORY) -> None:
        self.window, self.history = window, history
        self.counts = _Counts()
        self.covis: defaultdict[str, defaultdict[str, float]] = defaultdict(
            lambda: defaultdict(float)
        )
        self.recent: defaultdict[str, list[str]] = defaultdict(list)  # newest first
        self.seen: defaultdict[str, set[str]] = defaultdict(set)

    def observe(self, click: ClickEvent) -> None:
        item, recent = click.item_id, self.recent[click.user_id]
        for distance, other in enumerate(recent[: self.window]):
            if other != item:
                weight = 1.0 / (1 + distance)
                self.covis[item][other] += weight
                self.covis[other][item] += weight
        if item in recent:
            recent.remove(item)
        recent.insert(0, item)
        del recent[RECENT_LIMIT:]
        self.counts.add(item)
        self.seen[click.user_id].add(item)

    def recommend(self, user_id: str, k: int) -> list[str]:
        seen = self.seen[user_id]
        scores: defaultdict[str, float] = defaultdict(float)
        for distance, source in enumerate(self.recent[user_id][: self.history]):
            weight = 1.0 / (1 + distance)
            for item, count in self.covis.get(source, {}).items():
                if item not in seen:
                    scores[item] += weight * count
        first = self.counts.first_seen
        ranked = heapq.nlargest(k, scores, key=lambda i: (scores[i], -first[i]))
        if len(ranked) < k:
            ranked += self.counts.top(k - len(ranked), seen, also=ranked)
        return ranked


def replay(
    model: OnlineRecommender, clicks: Sequence[ClickEvent], wanted: set[str], k: int = 10
) -> Mapping[str, list[str]]:
    """Feed ``clicks`` to ``model`` in order; its answer after each click in ``wanted``."""
    answers: dict[str, list[str]] = {}
    for click in clicks:
        model.observe(click)
        if click.event_id in wanted:
            answers[click.event_id] = model.recommend(click.user_id, k)
    return answers


def default_baselines(seed: int = 0) -> list[OnlineRecommender]:
    """Popularity, co-visitation item-kNN and river's BiasedMF (``biased_mf.py``)."""
    from services.eval.biased_mf import BiasedMFBaseline

    return [Popularity(), CoVisitationKNN(), BiasedMFBaseline(seed=seed)]
