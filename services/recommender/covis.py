"""Co-visitation counts as arrays: each item's neighbours in two numpy columns.

The candidate step asks, per click, for the co-visited items of up to ten recent clicks:
a few thousand (neighbour, count) pairs summed by neighbour. As ``dict[str, Counter]``
that was one Python dict update per pair, a quarter of the worker's time per click. Here a
row is an ``int32`` column of item indices and a ``float64`` column of counts, so the sum
is one ``bincount`` (or ``np.unique`` for a large catalog), and a pair takes 12 bytes
instead of a Counter entry's ~100.

The results are the dict version's exactly, order included: rows keep their insertion
order, sums run in the same order (``bincount`` adds sequentially, as the loop did), a
pruned row is kept in ``Counter.most_common`` order, ties in the top list go to the item
seen first, as ``heapq.nlargest`` gave them, and the strongest source of an item compares
``count / (1 + pos)`` as the old loop did (``count * (1 / (1 + pos))``, the score's term,
rounds differently). ``tests/unit/test_covis.py`` replays a stream through both.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

__all__ = ["CovisView", "CovisitationGraph", "Neighbours"]

# Sum a user's pairs by counting over the whole catalog while it has at most this many
# items per pair summed; above, by sorting the pairs (``np.unique``).
DENSE_FACTOR = 8


class _Row:
    """One item's neighbours: ``cols[:n]`` item indices, ``vals[:n]`` their counts."""

    __slots__ = ("cols", "n", "vals")

    def __init__(self) -> None:
        self.cols = np.empty(8, np.int32)
        self.vals = np.empty(8, np.float64)
        self.n = 0

    def add(self, col: int, weight: float) -> None:
        n = self.n
        hit = np.flatnonzero(self.cols[:n] == col)
        if len(hit):
            self.vals[hit[0]] += weight
            return
        if n == len(self.cols):
            self.cols = np.concatenate([self.cols, np.empty(n, np.int32)])
            self.vals = np.concatenate([self.vals, np.empty(n, np.float64)])
        self.cols[n], self.vals[n] = col, weight
        self.n = n + 1

    def prune(self, keep: int) -> None:
        """Keep the ``keep`` largest counts, largest first, ties in insertion order
        (``Counter.most_common``)."""
        order = np.argsort(-self.vals[: self.n], kind="stable")[:keep]
        self.cols, self.vals, self.n = self.cols[order], self.vals[order], len(order)


class Neighbours:
    """The co-visited items of one user's recent clicks, strongest first.

    Keeps the pairs it summed, so :meth:`strongest_sources` can say which recent click
    led to an item (explanations) without reading the rows again.
    """

    def __init__(
        self,
        items: list[str],
        scores: np.ndarray,
        cols: np.ndarray,
        counts: np.ndarray,
        positions: np.ndarray,
        index: Mapping[str, int],
        recent: Sequence[str],
        ids: np.ndarray | None = None,
    ) -> None:
        self.items = items  # the top items, strongest first
        self.scores = scores  # float64, aligned with ``items``
        # The top items' columns in the graph's index, aligned with ``items``.
        self.ids = ids if ids is not None else np.array([index[i] for i in items], np.int64)
        self._score_of: dict[str, float] | None = None  # built on the first ``get``
        # Every pair summed: neighbour, its count in the source's row, the source's position.
        self._cols, self._counts, self._positions = cols, counts, positions
        self._index, self._recent = index, recent

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.items)

    def get(self, item: str, default: float = 0.0) -> float:
        if self._score_of is None:
            self._score_of = dict(zip(self.items, self.scores.tolist(), strict=True))
        return self._score_of.get(item, default)

    def scores_of(self, ids: np.ndarray) -> np.ndarray:
        """:meth:`get` of many items by their column in the graph's index (-1: an item the
        graph does not know), as float64: array lookups, not a dict per list."""
        n = len(self._index) + 1
        if n <= DENSE_FACTOR * max(1, len(self._cols)):
            # A catalog no larger than the pairs already summed: scatter, then gather.
            by_col = np.zeros(n, np.float64)  # the last slot is id -1's
            by_col[self.ids] = self.scores
            return by_col[ids]
        # A large catalog: a search in the (short) sorted top list, not a catalog-wide array
        # per click.
        if not len(self.ids):
            return np.zeros(len(ids), np.float64)
        order = np.argsort(self.ids)
        top = self.ids[order]
        at = np.minimum(np.searchsorted(top, ids), len(top) - 1)
        return np.where(top[at] == ids, self.scores[order][at], 0.0)

    def strongest_sources(self, items: Sequence[str]) -> list[str | None]:
        """For each item, the recent click that contributes most to its score (the nearer
        in time on a tie); None if no recent click was co-visited with it."""
        if not len(self._cols) or not items:
            return [None] * len(items)
        index = self._index
        targets = np.fromiter((index.get(i, -1) for i in items), np.int64, len(items))
        # Only the pairs that name a shown item (a few of a user's thousands): comparing
        # every pair with every item was a [items, pairs] matrix per list.
        shown = np.zeros(len(index), bool)  # by item column: a lookup, not a search
        shown[targets[targets >= 0]] = True
        pairs = np.flatnonzero(shown[self._cols]).tolist()
        if not pairs:
            return [None] * len(items)
        cols = self._cols[pairs].tolist()
        positions = self._positions[pairs]
        # count / (1 + pos), as the loop this replaces divided: the same ties, to the bit.
        values = (self._counts[pairs] / (1 + positions)).tolist()
        best: dict[int, tuple[float, int]] = {}  # item column -> (value, position)
        for col, value, pos in zip(cols, values, positions.tolist(), strict=True):
            held = best.get(col)
            # In pair order (nearest recent click first): a tie keeps the first.
            if value > 0.0 and (held is None or value > held[0]):
                best[col] = (value, pos)
        out: list[str | None] = []
        for target in targets.tolist():
            found = best.get(target)
            out.append(self._recent[found[1]] if found is not None else None)
        return out


class CovisitationGraph:
    """Symmetric, recency-weighted co-visitation counts between items, bounded per row."""

    def __init__(self, max_neighbours: int) -> None:
        self.max_neighbours = max_neighbours
        self._index: dict[str, int] = {}
        self._names: list[str] = []  # interned: one copy of each id for every row
        self._rows: list[_Row | None] = []

    @property
    def index(self) -> Mapping[str, int]:
        """Item id -> its column: the item's position in every per-item array of
        ``ItemStats`` too (read-only)."""
        return self._index

    def register(self, item: str) -> int:
        """``item``'s column, assigned on first sight (with no row yet)."""
        return self._id(item)

    def _id(self, item: str) -> int:
        i = self._index.get(item)
        if i is None:
            i = len(self._names)
            item = sys.intern(item)
            self._index[item] = i
            self._names.append(item)
            self._rows.append(None)
        return i

    def add(self, a: str, b: str, weight: float) -> None:
        """Count ``weight`` on the pair both ways."""
        ia, ib = self._id(a), self._id(b)
        for row_id, col in ((ia, ib), (ib, ia)):
            row = self._rows[row_id]
            if row is None:
                row = self._rows[row_id] = _Row()
            row.add(col, weight)
            if row.n > 2 * self.max_neighbours:
                row.prune(self.max_neighbours)

    def row(self, item: str) -> dict[str, float]:
        """``item``'s neighbours and counts, in row order (empty if it has none)."""
        i = self._index.get(item)
        row = self._rows[i] if i is not None else None
        if row is None:
            return {}
        names, cols, vals = self._names, row.cols[: row.n].tolist(), row.vals[: row.n].tolist()
        return {names[c]: v for c, v in zip(cols, vals, strict=True)}

    def top(self, item: str, n: int) -> list[str]:
        """``item``'s ``n`` most co-visited neighbours, largest count first."""
        i = self._index.get(item)
        row = self._rows[i] if i is not None else None
        if row is None:
            return []
        order = np.argsort(-row.vals[: row.n], kind="stable")[:n]
        return [self._names[c] for c in row.cols[order].tolist()]

    def neighbours(self, recent: Sequence[str], limit: int, weights: Sequence[float]) -> Neighbours:
        """The ``limit`` items co-visited most with ``recent`` (newest first), each
        recent click's row scaled by its entry in ``weights``."""
        cols, counts, scales, sources, lengths = [], [], [], [], []
        for pos, (source, weight) in enumerate(zip(recent, weights, strict=False)):
            i = self._index.get(source)
            row = self._rows[i] if i is not None else None
            if row is None:
                continue
            cols.append(row.cols[: row.n])
            counts.append(row.vals[: row.n])
            scales.append(weight)
            sources.append(pos)
            lengths.append(row.n)
        if not cols:
            empty = np.zeros(0)
            return Neighbours(
                [],
                empty,
                empty.astype(np.int32),
                empty,
                empty,
                self._index,
                recent,
                ids=empty.astype(np.int64),
            )
        col = np.concatenate(cols)
        count = np.concatenate(counts)
        # One product for all rows (the same products, element by element, as row by row).
        contribution = count * np.repeat(np.array(scales, np.float64), lengths)
        positions = np.repeat(np.array(sources), lengths)
        ids, first, scores = self._sum_by_item(col, contribution)
        if limit <= 0:
            order = ids[:0]
        else:
            keep = np.arange(len(ids))
            if limit < len(ids):
                # Only the items at or above the limit-th score can make the list: sort
                # those (a partition is linear; sorting all was most of this call).
                cut = np.partition(scores, len(ids) - limit)[len(ids) - limit]
                keep = np.flatnonzero(scores >= cut)
            # Largest first; a tie to the item met first, as the dict it replaces had them.
            order = keep[np.lexsort((first[keep], -scores[keep]))][:limit]
        names, top = self._names, ids[order]
        return Neighbours(
            [names[c] for c in top.tolist()],
            scores[order],
            col,
            count,
            positions,
            self._index,
            recent,
            ids=top,
        )

    def _sum_by_item(
        self, col: np.ndarray, contribution: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The distinct items of ``col``, where each first appears, and their summed
        contributions (added in ``col`` order, as the dict did)."""
        n, m = len(self._names), len(col)
        if n <= DENSE_FACTOR * m:
            # A small catalog: counting over all of it beats sorting the pairs 2-3x.
            totals = np.bincount(col, weights=contribution, minlength=n)
            firsts = np.full(n, m, np.int64)
            np.minimum.at(firsts, col, np.arange(m))
            ids = np.flatnonzero(firsts < m)
            return ids, firsts[ids], totals[ids]
        ids, first, inverse = np.unique(col, return_index=True, return_inverse=True)
        return ids, first, np.bincount(inverse, weights=contribution, minlength=len(ids))

    def pairs(self) -> int:
        """How many (item, neighbour) counts are held."""
        return sum(row.n for row in self._rows if row is not None)

    def view(self) -> CovisView:
        return CovisView(self)


class CovisView(Mapping[str, dict[str, float]]):
    """Read-only ``item -> {neighbour: count}`` over a graph (snapshots, digests, tests)."""

    def __init__(self, graph: CovisitationGraph) -> None:
        self._graph = graph

    def __getitem__(self, item: str) -> dict[str, float]:
        row = self._graph.row(item)
        if not row:
            raise KeyError(item)
        return row

    def __iter__(self) -> Iterator[str]:
        rows = zip(self._graph._names, self._graph._rows, strict=True)
        return (name for name, row in rows if row is not None)

    def __len__(self) -> int:
        return sum(row is not None for row in self._graph._rows)
