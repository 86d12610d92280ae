"""Online user segments: users clustered by taste, each segment's favourite items.

A user's embedding (the mean of their recent items' MiniLM vectors) is reduced by a
seeded random projection and clustered online with river's ``KMeans``. Per segment we
keep click counts decayed in event time; the top ones are a candidate source
("people like you clicked") and their log is a side feature for the ranker.

Assigning a user is read-only; centroids and counts change only through ``learn`` and
``observe``, which the worker calls when it applies a shared ``item-activity`` record, so
every worker that applies the same records in the same order holds the same segments.
"""

from __future__ import annotations

import heapq
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from river import cluster

__all__ = ["COLD_SEGMENT", "SegmentConfig", "UserSegmenter"]

# Segment of a user we know nothing about (an all-zero embedding). It is an ordinary
# segment, so a cold user gets the favourites of whoever else landed there: a fair fallback.
COLD_SEGMENT = 0
# Bump when the layout of ``to_state`` changes; ``from_state`` refuses other versions.
STATE_VERSION = 1


@dataclass(frozen=True)
class SegmentConfig:
    """Hyperparameters of the segmenter; part of its state, so a restart resumes alike."""

    n_segments: int = 12
    reduced_dim: int = 16
    halflife_s: float = 7 * 24 * 3600.0  # decay of per-segment item counts, event seconds
    seed: int = 0  # of the projection and of river's initial centroids
    # river's ``halflife`` is a step size, not a half-life: the winning centroid moves this
    # fraction of the way to each user. Small keeps segments stable (favourites are counted
    # per segment over days, so a segment must keep its meaning); 0.01 averages a centroid
    # over its last ~100 users.
    kmeans_halflife: float = 0.01
    # Spread of river's Gaussian initial centroids; None means 1/sqrt(reduced_dim), which
    # puts them on the unit sphere where the normalised users live. river's default of 1
    # puts them ~4 units out, so the first centroid pulled in wins every later user. It only
    # matters for centroids that no user has seeded yet.
    kmeans_sigma: float | None = None
    # The first users that are this far (Euclidean, unit vectors) from every earlier seed
    # become the initial centroids; see ``UserSegmenter.learn``.
    seed_min_distance: float = 0.3
    max_items: int = 1000  # per segment; above it, prune to ``keep_items``
    keep_items: int = 500
    refresh_every: int = 100  # observations of a segment between favourites refreshes

    def __post_init__(self) -> None:
        if self.n_segments < 1 or self.reduced_dim < 1:
            raise ValueError("n_segments and reduced_dim must be at least 1")
        if not self.halflife_s > 0:
            raise ValueError(f"halflife_s must be positive, got {self.halflife_s}")
        if not 0 < self.kmeans_halflife <= 1:
            raise ValueError(f"kmeans_halflife must be in (0, 1], got {self.kmeans_halflife}")
        if not 0 < self.keep_items < self.max_items:
            raise ValueError("need 0 < keep_items < max_items")


class UserSegmenter:
    """Assigns users to segments online and tracks what each segment clicks.

    Not thread-safe; one per worker, like ``ItemStats``.
    """

    def __init__(self, config: SegmentConfig = SegmentConfig(), embedding_dim: int = 384) -> None:
        self.config = config
        self.embedding_dim = embedding_dim
        # A Gaussian random projection keeps distances roughly (Johnson-Lindenstrauss) and
        # needs no training, so it is rebuilt from the seed rather than stored.
        rng = np.random.default_rng(config.seed)
        self._projection = rng.standard_normal((embedding_dim, config.reduced_dim)).astype(
            np.float32
        )
        sigma = config.kmeans_sigma
        self._kmeans = cluster.KMeans(
            n_clusters=config.n_segments,
            halflife=config.kmeans_halflife,
            sigma=config.reduced_dim**-0.5 if sigma is None else sigma,
            seed=config.seed,
        )
        # river draws a centroid's coordinates lazily, on first access. Draw them all now,
        # in a fixed order, so the centroids are plain numbers that ``to_state`` can save.
        for center in self._kmeans.centers.values():
            for k in range(config.reduced_dim):
                center[k]  # touching a defaultdict key draws its value
        self._seeded = 0  # centroids initialised from users so far
        self._centers: np.ndarray | None = None  # [n_segments, reduced_dim] for ``segment_of``
        self._decay = math.log(2) / config.halflife_s
        self.now = 0.0  # newest event time seen, epoch seconds
        # segment -> item -> (decayed count, at event time)
        self._counts: dict[int, dict[str, tuple[float, float]]] = {}
        self._observed: dict[int, int] = {}  # segment -> observations, for cache refresh
        self._favourites: dict[int, tuple[int, int, list[str]]] = {}  # (observed, n, top)
        # ``_counts`` again as arrays, for :meth:`affinities`: item -> column, and
        # [segment, (decayed count, at), column]; a pruned item's slot is zeroed. A column
        # is freed for reuse once no segment counts its item, so the arrays stay within
        # ``n_segments * max_items`` columns however large the catalog.
        self._columns: dict[str, int] = {}
        self._holders: list[int] = []  # per column: how many segments count its item
        self._free: list[int] = []
        self._by_column = np.zeros((config.n_segments, 2, 256), np.float64)

    # -- segments ------------------------------------------------------------------------

    # Assigning and learning are separate so that several workers can share one set of
    # centroids: a worker assigns (read-only) and publishes ``reduce``'s vector; every
    # worker ``learn``s from the published vectors in feed order, so all end up identical.
    # One process alone calls ``assign`` then ``learn`` on the same vector, which is
    # exactly river's learn-and-predict.

    def reduce(self, user_vector: np.ndarray) -> list[float]:
        """The user's taste as the centroids see it: the normalised ``reduced_dim`` projection.

        Empty for an all-zero (or non-finite) vector: it says nothing about taste and would
        drag a centroid towards the origin. Plain floats, so it survives JSON exactly.
        """
        vector = np.asarray(user_vector, dtype=np.float32)
        if vector.shape != (self.embedding_dim,):
            raise ValueError(
                f"expected a user vector of shape ({self.embedding_dim},), got {vector.shape}"
            )
        reduced = vector @ self._projection
        norm = float(np.linalg.norm(reduced))
        if not (norm > 1e-12 and math.isfinite(norm)):
            return []
        values: list[float] = (reduced / norm).tolist()
        return values

    def assign(self, user_vector: np.ndarray) -> int:
        """The user's segment in ``[0, n_segments)``, learning nothing."""
        return self.segment_of(self.reduce(user_vector))

    def segment_of(self, reduced: Sequence[float]) -> int:
        """The segment of a :meth:`reduce` vector, learning nothing.

        It is the segment :meth:`learn` would put the vector in now (a new seed, or the
        nearest centroid); an empty vector gets ``COLD_SEGMENT``. The distances come from a
        numpy copy of the centroids (river's pure-Python ``predict_one`` was ~60 µs a
        click); rounding may break an exact tie differently from river, which only changes
        the segment a user is served, never what replicas learn.
        """
        if not reduced:
            return COLD_SEGMENT
        if self._seeded < self.config.n_segments and self._is_new_seed(dict(enumerate(reduced))):
            return self._seeded
        if self._centers is None:
            centers, dim = self._kmeans.centers, self.config.reduced_dim
            self._centers = np.array(
                [[centers[c][k] for k in range(dim)] for c in range(self.config.n_segments)]
            )
        distances = ((self._centers - np.asarray(reduced, np.float64)) ** 2).sum(axis=1)
        return int(np.argmin(distances))  # the first of equals, like river's ``min``

    def learn(self, reduced: Sequence[float]) -> int:
        """Move (or seed) a centroid towards a :meth:`reduce` vector; return its segment.

        Deterministic: replicas that learn the same vectors in the same order hold the
        same centroids. An empty vector is not learned and gives ``COLD_SEGMENT``.
        """
        if not reduced:
            return COLD_SEGMENT
        if len(reduced) != self.config.reduced_dim:
            want = self.config.reduced_dim
            raise ValueError(f"expected a reduced vector of {want} values, got {len(reduced)}")
        x = {k: float(v) for k, v in enumerate(reduced)}
        self._centers = None  # a centroid moves
        if self._is_new_seed(x):
            segment = self._seeded
            self._kmeans.centers[segment].update(x)
            self._seeded += 1
            return segment
        # learn_predict_one is learn_one + predict_one in one distance pass: moving the
        # nearest centroid towards x only makes it nearer, so the prediction is the same.
        # river's plain-Python arithmetic rounds alike on every machine, which replicas
        # need (numpy's SIMD sums may not).
        return int(self._kmeans.learn_predict_one(x))

    def _is_new_seed(self, x: dict[int, float]) -> bool:
        """Whether ``x`` becomes the next initial centroid (it is far enough from the others).

        Users fill a narrow cap of the sphere, and random centroids outside it never win a
        user: in a simulation with 30 tastes, Gaussian initial centroids left 2 to 3 of 12
        segments empty (11 of 12 at river's default sigma). Seeding from the first distinct
        users (the classic first-k k-means start) puts every centroid among users.
        Near-duplicates are skipped, so one user clicking repeatedly at start-up does not
        take every seed, and one tight taste does not get split over many segments.
        """
        if self._seeded >= self.config.n_segments:
            return False
        centers = self._kmeans.centers
        min_sq = self.config.seed_min_distance**2
        for c in range(self._seeded):
            if sum((centers[c][k] - v) ** 2 for k, v in x.items()) < min_sq:
                return False
        return True

    # -- per-segment item counts ---------------------------------------------------------

    def observe(self, segment: int, item_id: str, ts: float) -> None:
        """Count a click on ``item_id`` by a user of ``segment`` at event time ``ts``."""
        self._check(segment)
        self.now = max(self.now, ts)
        item_id = sys.intern(item_id)  # one copy of each id, not one per record (ItemStats)
        items = self._counts.setdefault(segment, {})
        held = items.get(item_id)
        value, at = held if held is not None else (0.0, ts)
        # A late event decays nothing and counts in full at the stored time, like ItemStats.
        entry = items[item_id] = (
            value * math.exp(-self._decay * max(0.0, ts - at)) + 1.0,
            max(at, ts),
        )
        self._put(segment, item_id, entry, new=held is None)
        self._observed[segment] = self._observed.get(segment, 0) + 1
        if len(items) > self.config.max_items:
            keep = heapq.nlargest(self.config.keep_items, items, key=self._scorer(items))
            kept = self._counts[segment] = {item: items[item] for item in keep}
            self._favourites.pop(segment, None)  # may name pruned items
            for item in items:
                if item not in kept:
                    self._drop(segment, item)

    def _put(self, segment: int, item_id: str, entry: tuple[float, float], new: bool) -> None:
        """Mirror ``_counts[segment][item_id] = entry`` in the arrays (``new``: the
        segment did not count the item before)."""
        column = self._columns.get(item_id)
        if column is None:
            column = self._columns[item_id] = self._free.pop() if self._free else len(self._holders)
            if column == len(self._holders):
                self._holders.append(0)
            if column >= self._by_column.shape[2]:
                grown = np.zeros((*self._by_column.shape[:2], 2 * column), np.float64)
                grown[:, :, : self._by_column.shape[2]] = self._by_column
                self._by_column = grown
        self._by_column[segment, :, column] = entry
        self._holders[column] += new

    def _drop(self, segment: int, item_id: str) -> None:
        """Mirror the pruning of ``item_id`` from a segment's counts in the arrays."""
        column = self._columns[item_id]
        self._by_column[segment, :, column] = 0.0
        self._holders[column] -= 1
        if not self._holders[column]:  # no segment counts it: the column is free
            del self._columns[item_id]
            self._free.append(column)

    def favourites(self, segment: int, n: int) -> list[str]:
        """The segment's ``n`` items with the highest decayed counts, best first.

        Decay multiplies every count by the same factor, so the order only changes when a
        click arrives; the list is recomputed every ``refresh_every`` clicks of the segment
        (at most ``max_items`` items) rather than per call, and is at most that stale.
        """
        self._check(segment)
        items = self._counts.get(segment)
        if not items or n <= 0:
            return []
        observed = self._observed[segment]
        cached = self._favourites.get(segment)
        if cached is None or observed - cached[0] >= self.config.refresh_every or n > cached[1]:
            top = heapq.nlargest(n, items, key=self._scorer(items))
            self._favourites[segment] = (observed, n, top)
            return top
        return cached[2][:n]

    def affinity(self, segment: int, item_id: str) -> float:
        """``log1p`` of the item's decayed click count in the segment; 0.0 if never clicked.

        A ranker side feature: the log keeps it on a similar scale whether traffic is light
        or heavy, and matches the other count features (``candidates.generate``).
        """
        self._check(segment)
        entry = self._counts.get(segment, {}).get(item_id)
        if entry is None:
            return 0.0
        return math.log1p(self._decayed(entry))

    def affinities(self, segment: int, item_ids: Sequence[str]) -> np.ndarray:
        """:meth:`affinity` of many items at once (float32), for candidate features.

        One vectorised decay instead of a ``math.exp`` per candidate: the per-click loop
        over ~100 candidates was a tenth of the worker's time.
        """
        self._check(segment)
        get = self._columns.get
        columns = np.fromiter((get(item, -1) for item in item_ids), np.int64, len(item_ids))
        known = columns >= 0
        value = np.where(known, self._by_column[segment, 0, columns], 0.0)
        at = np.where(known, self._by_column[segment, 1, columns], self.now)
        decayed = value * np.exp(-self._decay * np.maximum(0.0, self.now - at))
        return np.log1p(decayed).astype(np.float32)

    def _decayed(self, entry: tuple[float, float]) -> float:
        value, at = entry
        return value * math.exp(-self._decay * max(0.0, self.now - at))

    def _scorer(self, items: dict[str, tuple[float, float]]) -> Callable[[str], float]:
        return lambda item: self._decayed(items[item])

    def _check(self, segment: int) -> None:
        if not 0 <= segment < self.config.n_segments:
            raise ValueError(f"segment {segment} is outside [0, {self.config.n_segments})")

    # -- snapshots -----------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot from which ``from_state`` resumes exactly.

        river's centroids are plain floats once drawn (see ``__init__``), so they are
        stored as lists rather than a pickle: readable, and not tied to river's internals.
        The projection is not stored; the seed rebuilds it.
        """
        return {
            "version": STATE_VERSION,
            "config": asdict(self.config),
            "embedding_dim": self.embedding_dim,
            "centers": [
                [center[k] for k in range(self.config.reduced_dim)]
                for _, center in sorted(self._kmeans.centers.items())
            ],
            "seeded": self._seeded,
            "now": self.now,
            # JSON object keys are strings, hence str(segment).
            "counts": {
                str(s): {item: [v, at] for item, (v, at) in items.items()}
                for s, items in self._counts.items()
            },
            "observed": {str(s): n for s, n in self._observed.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> UserSegmenter:
        """Rebuild a segmenter from ``to_state`` output (possibly via JSON)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"segmenter state version {state.get('version')!r} is not {STATE_VERSION}; "
                "start from a fresh UserSegmenter"
            )
        config = SegmentConfig(**state["config"])
        segmenter = cls(config, embedding_dim=int(state["embedding_dim"]))
        for c, coords in enumerate(state["centers"]):
            segmenter._kmeans.centers[c].update(enumerate(float(v) for v in coords))
        segmenter._seeded = int(state["seeded"])
        segmenter.now = float(state["now"])
        segmenter._counts = {
            int(s): {item: (float(v), float(at)) for item, (v, at) in items.items()}
            for s, items in state["counts"].items()
        }
        for s, items in segmenter._counts.items():
            segmenter._check(s)
            for item, entry in items.items():
                segmenter._put(s, item, entry, new=True)
        segmenter._observed = {int(s): int(n) for s, n in state["observed"].items()}
        return segmenter
