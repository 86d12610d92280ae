"""Item text embeddings the worker knows: one growing matrix, rows by item id.

Fed by the ``items`` agent through Triton's ``item_encoder``. The ranker reads rows of
it (an unknown item is a zero row: the ranker then leans on its side features), user
vectors are means of recent rows, and :meth:`EmbeddingIndex.nearest` is the exact
semantic-neighbour search behind the "similar description" candidates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

DIM = 384


class EmbeddingIndex:
    """item_id -> L2-normalised vector, in a matrix that doubles as it fills."""

    def __init__(self, dim: int = DIM, capacity: int = 1024) -> None:
        self.dim = dim
        self._matrix = np.zeros((capacity, dim), np.float32)
        self._rows: dict[str, int] = {}
        self.ids: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    @property
    def matrix(self) -> np.ndarray:
        """[len, dim] view of the known vectors (row i is ``ids[i]``)."""
        return self._matrix[: len(self.ids)]

    def upsert(self, item_id: str, vector: np.ndarray) -> None:
        vec = np.asarray(vector, np.float32).reshape(-1)
        if vec.shape[0] != self.dim or not np.isfinite(vec).all():
            raise ValueError(f"embedding of {item_id!r} must be {self.dim} finite floats")
        norm = float(np.linalg.norm(vec))
        if norm > 0:
            vec = vec / norm
        row = self._rows.get(item_id)
        if row is None:
            row = len(self.ids)
            if row == self._matrix.shape[0]:
                grown = np.zeros((2 * row, self.dim), np.float32)
                grown[:row] = self._matrix
                self._matrix = grown
            self._rows[item_id] = row
            self.ids.append(item_id)
        self._matrix[row] = vec

    def vectors(self, item_ids: Sequence[str]) -> np.ndarray:
        """[len(item_ids), dim]; zero rows for items without an embedding."""
        get = self._rows.get
        rows = np.fromiter((get(i, -1) for i in item_ids), np.int64, len(item_ids))
        out = self._matrix[np.maximum(rows, 0)]  # a copy: fancy indexing
        out[rows < 0] = 0.0
        return out

    def user_vector(self, recent: Sequence[str], n: int = 10) -> np.ndarray:
        """Mean of the user's ``n`` most recent known items, normalised (zeros if none known)."""
        rows = [self._rows[i] for i in recent[:n] if i in self._rows]
        if not rows:
            return np.zeros(self.dim, np.float32)
        mean = self._matrix[rows].mean(axis=0)
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm > 0 else mean

    def nearest(
        self, queries: np.ndarray, k: int, exclude: Sequence[Iterable[str]] = ()
    ) -> list[list[tuple[str, float]]]:
        """Top-``k`` items by cosine for each query row, minus that query's ``exclude`` set.

        Exact search (one matmul): ml-100k's 1,682 items × 256 users is ~0.3 GFLOP. A
        catalog of millions would want an ANN index behind this same method.
        """
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        n = len(self.ids)
        if n == 0 or k <= 0:
            return [[] for _ in range(queries.shape[0])]
        sims = queries @ self.matrix.T
        get = self._rows.get
        results: list[list[tuple[str, float]]] = []
        for q in range(queries.shape[0]):
            if not np.any(queries[q]):
                results.append([])  # nothing known about the user's taste yet
                continue
            row = sims[q]
            if q < len(exclude):
                # Mask the excluded rows rather than filter a longer top list: a heavy user
                # has seen most of a small catalog, and walking it per click was the
                # worker's single largest cost.
                skip = np.fromiter((get(i, -1) for i in exclude[q]), np.int64)
                row[skip[skip >= 0]] = -np.inf
            want = min(n, k)
            top = np.argpartition(-row, want - 1)[:want]
            top = top[np.argsort(-row[top], kind="stable")]
            top = top[np.isfinite(row[top])]
            ids = self.ids
            results.append([(ids[i], float(row[i])) for i in top.tolist()])
        return results
