"""Per-user and per-item state the ranking reads: recent items, popularity, co-visitation."""

from __future__ import annotations

import heapq
import math
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from services.contract.events import Judged
from services.recommender.covis import CovisitationGraph, CovisView, Neighbours
from services.recommender.windows import DAY_S, HOUR_S, WindowedCounter

# How many recent event ids a user remembers to drop replayed duplicates.
DEDUP_WINDOW = 200
# Co-visitation is recorded between an item and the user's previous few clicks only:
# nearer clicks say more about each other, and it bounds the work per click.
COVIS_WINDOW = 5
# Neighbours of a user are drawn from this many of their recent clicks.
NEIGHBOUR_SOURCES = 2 * COVIS_WINDOW
_SOURCE_WEIGHTS = [1.0 / (1 + pos) for pos in range(NEIGHBOUR_SOURCES)]
# Neighbour lists are pruned to this size so memory stays bounded on a large catalog.
MAX_NEIGHBOURS = 200
TRENDING_HALF_LIFE_S = 24 * 3600.0
# Trending and popular lists are kept at least this long between refreshes.
RANKED_CACHE_SIZE = 1000


@dataclass
class UserState:
    """What we remember of one user; stored in a changelogged table keyed by user_id."""

    recent: list[str] = field(default_factory=list)  # most recent first
    seen: list[str] = field(default_factory=list)  # oldest first, bounded
    event_ids: list[str] = field(default_factory=list)  # oldest first, bounded
    clicks: int = 0
    last_ts: float = 0.0  # epoch seconds of the newest click
    # The event time the user's feature row is stamped with, in epoch microseconds: the
    # newest click's, plus 1 µs for each click that arrived late (not after it). The
    # online store keeps a row only if it is strictly newer, so without the bump the row
    # after a late click (one more click counted) would be refused as "not newer".
    row_us: int = 0
    segment: int | None = None  # the online segment at the newest click
    # Clicks by event time over the last day, for the hourly and daily counts.
    click_windows: WindowedCounter = field(default_factory=WindowedCounter)
    # The last list each lane made for this user ("serving", and "shadow" while a
    # challenger is in shadow): {"trigger": event_id, "version", "segment", "items"}.
    # The user's next click judges them (online HR@k, ``Recommendation.judged``).
    shown: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def clicks_1h(self) -> int:
        """Clicks in the hour up to the newest click (event time)."""
        return self.click_windows.count(HOUR_S)

    @property
    def clicks_24h(self) -> int:
        """Clicks in the day up to the newest click (event time)."""
        return self.click_windows.count(DAY_S)

    def to_json(self) -> dict[str, Any]:
        return {
            "recent": self.recent,
            "seen": self.seen,
            "event_ids": self.event_ids,
            "clicks": self.clicks,
            "last_ts": self.last_ts,
            "row_us": self.row_us,
            "segment": self.segment,
            "click_windows": self.click_windows.to_json(),
            "shown": self.shown,
        }

    def copy(self) -> UserState:
        """An independent copy (lists and windows included)."""
        return UserState.from_json(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> UserState:
        """A state saved by :meth:`to_json`; raises ValueError for anything else."""
        if not data:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"not a saved user state: a {type(data).__name__}")
        try:
            return cls._from_dict(data)
        except (AttributeError, OverflowError, TypeError, KeyError) as exc:
            raise ValueError(f"not a saved user state ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> UserState:
        return cls(
            recent=list(data.get("recent", [])),
            seen=list(data.get("seen", [])),
            event_ids=list(data.get("event_ids", [])),
            clicks=int(data.get("clicks", 0)),
            last_ts=float(data.get("last_ts", 0.0)),
            row_us=int(data.get("row_us", round(float(data.get("last_ts", 0.0)) * 1e6))),
            segment=data.get("segment"),
            # Absent from state saved before windows existed: those clicks go uncounted.
            click_windows=WindowedCounter.from_json(data.get("click_windows")),
            shown={lane: dict(list_) for lane, list_ in (data.get("shown") or {}).items()},
        )

    @property
    def last_event_id(self) -> str | None:
        return self.event_ids[-1] if self.event_ids else None

    def judge(self, item_id: str) -> list[Judged]:
        """The verdict of a click on ``item_id`` (call before recording it) on each lane's
        last list. A list made for an earlier click than the previous one (two clicks of
        the user in one micro-batch) is not judged: it is not what was showing."""
        previous = self.last_event_id
        out = []
        for lane, shown in sorted(self.shown.items()):
            if previous is None or shown.get("trigger") != previous:
                continue
            items = list(shown.get("items", []))
            rank = items.index(item_id) + 1 if item_id in items else None
            out.append(
                Judged(
                    lane="shadow" if lane == "shadow" else "serving",
                    model_version=str(shown.get("version")),
                    segment=shown.get("segment"),
                    hit=rank is not None,
                    rank=rank,
                )
            )
        return out

    def show(
        self, lane: str, trigger: str, version: str, segment: int | None, items: list[str]
    ) -> None:
        self.shown[lane] = {
            "trigger": trigger,
            "version": version,
            "segment": segment,
            "items": items,
        }

    def has_event(self, event_id: str) -> bool:
        return event_id in self.event_ids

    def record(
        self, event_id: str, item_id: str, ts: float, recent_limit: int, seen_limit: int
    ) -> None:
        self.event_ids.append(event_id)
        del self.event_ids[:-DEDUP_WINDOW]
        item_id = sys.intern(item_id)  # one copy for every user's seen list (see observe)
        if item_id in self.recent:
            self.recent.remove(item_id)
        self.recent.insert(0, item_id)
        del self.recent[recent_limit:]
        if item_id not in self.seen:
            self.seen.append(item_id)
            del self.seen[:-seen_limit]
        self.clicks += 1
        click_us = round(ts * 1e6)
        self.row_us = click_us if click_us > self.row_us else self.row_us + 1
        self.last_ts = max(self.last_ts, ts)
        self.click_windows.add(ts)


class UserStateStore(Protocol):
    """Where user state lives: a Faust table in the worker, a dict in unit tests."""

    def get(self, user_id: str) -> UserState: ...

    def put(self, user_id: str, state: UserState, partition: int) -> None: ...


class InMemoryUserStateStore:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    def get(self, user_id: str) -> UserState:
        return UserState.from_json(self.data.get(user_id))

    def put(self, user_id: str, state: UserState, partition: int) -> None:
        self.data[user_id] = state.to_json()


class ItemStats:
    """Item popularity, trending (decayed in event time) and co-visitation counts."""

    def __init__(self, half_life_s: float = TRENDING_HALF_LIFE_S) -> None:
        self.popularity: Counter[str] = Counter()
        self._trend: dict[str, tuple[float, float]] = {}  # item -> (value, at_ts)
        self._covis = CovisitationGraph(MAX_NEIGHBOURS)
        self._decay = math.log(2) / half_life_s
        self.now = 0.0
        self._ranked_cache: dict[str, tuple[int, list[str]]] = {}  # kind -> (at, items)
        self._observed = 0
        # The same counts by item column (``item_ids``), for candidate features: a gather
        # per list instead of a dict lookup per candidate and feature.
        self._by_id = np.zeros((3, 1024), np.float64)  # popularity, trend value, trend at

    def observe(self, item_id: str, previous: list[str], ts: float) -> None:
        """Count a click on ``item_id`` whose user had clicked ``previous`` (newest first)."""
        self._observed += 1
        self.now = max(self.now, ts)
        # Every decoded record brings its own copies of the ids; the popularity and
        # trending dicts (and the co-visitation graph's id table) keep one interned copy
        # per item instead. The 30-minute soak's memory growth was mostly such copies
        # when co-visitation rows held strings (docs/RELIABILITY.md, test 15).
        item_id = sys.intern(item_id)
        self.popularity[item_id] += 1
        value, at = self._trend.get(item_id, (0.0, ts))
        trend = self._trend[item_id] = (
            value * math.exp(-self._decay * max(0.0, ts - at)) + 1.0,
            ts,
        )
        for pos, other in enumerate(previous[:COVIS_WINDOW]):
            if other != item_id:
                self._covis.add(item_id, other, 1.0 / (1 + pos))
        column = self._covis.register(item_id)
        # Every column the graph has handed out (``previous`` items too) has a slot.
        if len(self._covis.index) > self._by_id.shape[1]:
            grown = np.zeros((3, 2 * len(self._covis.index)), np.float64)
            grown[:, : self._by_id.shape[1]] = self._by_id
            self._by_id = grown
        self._by_id[:, column] = (self.popularity[item_id], *trend)

    def trending(self, item_id: str) -> float:
        value, at = self._trend.get(item_id, (0.0, self.now))
        return value * math.exp(-self._decay * max(0.0, self.now - at))

    def item_ids(self, item_ids: Sequence[str]) -> np.ndarray:
        """Each item's column (int64), -1 for an item never clicked: the index into
        :meth:`popularity_of`, :meth:`trending_of` and ``Neighbours.scores_of``."""
        get = self._covis.index.get
        return np.fromiter((get(item, -1) for item in item_ids), np.int64, len(item_ids))

    def popularity_of(self, ids: np.ndarray) -> np.ndarray:
        """``popularity`` of items by column (float64; 0 for -1)."""
        return np.where(ids >= 0, self._by_id[0, ids], 0.0)

    def trending_of(self, ids: np.ndarray) -> np.ndarray:
        """:meth:`trending` of items by column, with one vectorised decay (float64)."""
        value = np.where(ids >= 0, self._by_id[1, ids], 0.0)
        at = np.where(ids >= 0, self._by_id[2, ids], self.now)
        return value * np.exp(-self._decay * np.maximum(0.0, self.now - at))

    def top_trending(self, n: int) -> list[str]:
        return self._ranked("trending", n, self.trending)

    def top_popular(self, n: int) -> list[str]:
        return self._ranked("popular", n, lambda item: float(self.popularity[item]))

    def _ranked(self, kind: str, n: int, key: Callable[[str], float]) -> list[str]:
        """The top ``n`` items by ``key``, from a list refreshed every 100 clicks.

        Ranking the whole catalog per click would dominate the hot path (candidate
        generation asks for up to ``limit + len(seen)`` items, a different n per user), so
        the list is computed at least 1,000 long and reused until 100 more clicks arrived
        or a longer one is asked for.
        """
        cache = self._ranked_cache.get(kind)
        if cache is None or self._observed - cache[0] >= 100 or len(cache[1]) < n:
            size = max(n, RANKED_CACHE_SIZE, 2 * len(cache[1]) if cache else 0)
            top = heapq.nlargest(
                size, self._trend if kind == "trending" else self.popularity, key=key
            )
            cache = (self._observed, top)
            self._ranked_cache[kind] = cache
        return cache[1][:n]

    @property
    def covis(self) -> CovisView:
        """Read-only ``item -> {neighbour: count}`` (digests, snapshots, tests)."""
        return self._covis.view()

    def covisited(self, item_id: str, n: int) -> list[str]:
        """``item_id``'s ``n`` most co-visited items, most first."""
        return self._covis.top(item_id, n)

    def neighbours(self, recent: list[str], limit: int) -> Neighbours:
        """Co-visited items of the user's recent items, by recency-weighted score: the
        newest ``2 * COVIS_WINDOW`` clicks, the one ``pos`` back weighing ``1 / (1 + pos)``."""
        recent = recent[:NEIGHBOUR_SOURCES]
        return self._covis.neighbours(recent, limit, _SOURCE_WEIGHTS[: len(recent)])
