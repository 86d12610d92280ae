"""Per-second buckets over a sliding window: counts, and a bounded sample of values."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field


@dataclass
class Bucket:
    count: int = 0
    values: list[float] = field(default_factory=list)


class PerSecond:
    """Counts, and up to ``max_values`` values, in one-second buckets of the last
    ``window_s`` seconds (by the caller's clock).

    Past ``max_values`` in a second the values are a uniform reservoir sample, so a flat-out
    burst costs bounded memory and percentile time; the count stays exact.
    """

    def __init__(self, window_s: int, max_values: int = 1000, seed: int = 0) -> None:
        self.window_s = window_s
        self.max_values = max_values
        self._buckets: dict[int, Bucket] = {}
        self._random = random.Random(seed)

    def add(self, now: float, value: float | None = None) -> None:
        second = int(now)
        bucket = self._buckets.get(second)
        if bucket is None:
            bucket = self._buckets[second] = Bucket()
            self._prune(second)
        bucket.count += 1
        if value is None:
            return
        if len(bucket.values) < self.max_values:
            bucket.values.append(value)
        else:
            slot = self._random.randrange(bucket.count)
            if slot < self.max_values:
                bucket.values[slot] = value

    def _prune(self, second: int) -> None:
        oldest = second - self.window_s + 1
        for stale in [s for s in self._buckets if s < oldest]:
            del self._buckets[stale]

    def window(self, now: float) -> list[tuple[int, Bucket]]:
        """Every second of the window ending at ``now``, oldest first (empty ones too)."""
        last = int(now)
        empty = Bucket()
        return [(s, self._buckets.get(s, empty)) for s in range(last - self.window_s + 1, last + 1)]


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]
