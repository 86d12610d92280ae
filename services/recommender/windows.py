"""Event-time counts over sliding windows (clicks in the last hour, the last day).

A counter keeps one count per fixed bucket of event time for a bounded horizon, so its
memory never grows with traffic and it serialises to a few JSON numbers. The clock is the
newest event time the counter has seen, never the wall clock: a replay of a stream gives
the same counts as the live run did, and a historical stream (MovieLens is from 1998)
counts as it would have then.
"""

from __future__ import annotations

import math
from typing import Any

HOUR_S = 3600
DAY_S = 24 * HOUR_S
# Five-minute buckets: "the last hour" is then exact to within five minutes, and a day is
# at most 288 buckets, held sparsely (a user active in three bursts keeps three).
BUCKET_S = 300
HORIZON_S = DAY_S
# KeyedWindows drops idle keys after this many adds, so a long tail of items clicked
# once stops costing memory once their clicks leave the horizon.
_SWEEP_EVERY = 10_000


class WindowedCounter:
    """Events counted by event time in ``bucket_s`` buckets over the last ``horizon_s``.

    An event out of order but inside the horizon is counted in its own bucket; one older
    than the horizon (behind the newest event) could never be part of an answer, and is
    dropped. Counts are bucket-aligned: a window covers the bucket of its end and whole
    buckets before it, so ``count(HOUR_S)`` spans between 55 and 60 minutes.

    >>> c = WindowedCounter(bucket_s=60, horizon_s=600)
    >>> [c.add(ts) for ts in (0, 30, 90, 400)]
    [True, True, True, True]
    >>> c.count(120), c.count(600)
    (1, 4)
    >>> c.add(1000), c.add(500), c.add(350)  # newest first, then out of order
    (True, True, False)
    >>> c.count(600)
    2
    """

    __slots__ = ("_buckets", "bucket_s", "horizon_s", "newest")

    def __init__(self, bucket_s: int = BUCKET_S, horizon_s: int = HORIZON_S) -> None:
        if bucket_s <= 0 or horizon_s < bucket_s or horizon_s % bucket_s:
            raise ValueError(
                f"horizon_s ({horizon_s}) must be a positive multiple of bucket_s ({bucket_s})"
            )
        self.bucket_s = bucket_s
        self.horizon_s = horizon_s
        self.newest: float | None = None  # epoch seconds of the newest event counted
        self._buckets: dict[int, int] = {}  # bucket start (epoch seconds) -> count

    def add(self, ts: float, n: int = 1) -> bool:
        """Count ``n`` events at ``ts``; False when ``ts`` is beyond the horizon."""
        start = self._start(ts)
        if self.newest is None or ts > self.newest:
            advanced = self.newest is None or start > self._start(self.newest)
            self.newest = ts
            if advanced:
                self._prune()
        elif start <= self._start(self.newest) - self.horizon_s:
            return False
        self._buckets[start] = self._buckets.get(start, 0) + n
        return True

    def count(self, window_s: int, now: float | None = None) -> int:
        """Events in the ``window_s`` ending at ``now`` (default: the newest event)."""
        if not 0 < window_s <= self.horizon_s:
            raise ValueError(f"window_s must be in (0, {self.horizon_s}], got {window_s}")
        end_ts = self.newest if now is None else now
        if end_ts is None:
            return 0
        last = self._start(end_ts)
        first = last - (math.ceil(window_s / self.bucket_s) - 1) * self.bucket_s
        return sum(n for start, n in self._buckets.items() if first <= start <= last)

    def to_json(self) -> dict[str, Any]:
        return {"newest": self.newest, "buckets": [[s, n] for s, n in self._buckets.items()]}

    @classmethod
    def from_json(
        cls, data: dict[str, Any] | None, bucket_s: int = BUCKET_S, horizon_s: int = HORIZON_S
    ) -> WindowedCounter:
        """Load saved counts; buckets are re-cut if ``bucket_s`` changed since they were saved."""
        counter = cls(bucket_s, horizon_s)
        if not data:
            return counter
        newest = data.get("newest")
        if newest is not None:
            counter.newest = float(newest)
        for start, n in data.get("buckets", []):
            if counter.newest is None or float(start) > counter.newest:
                continue  # a corrupt entry ahead of the clock would count forever
            key = counter._start(float(start))
            counter._buckets[key] = counter._buckets.get(key, 0) + int(n)
        counter._prune()
        return counter

    def __len__(self) -> int:
        """Buckets held (the memory bound is horizon_s / bucket_s)."""
        return len(self._buckets)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowedCounter):
            return NotImplemented
        return (self.bucket_s, self.horizon_s, self.newest, self._buckets) == (
            other.bucket_s,
            other.horizon_s,
            other.newest,
            other._buckets,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        return f"WindowedCounter(newest={self.newest}, buckets={len(self._buckets)})"

    def _start(self, ts: float) -> int:
        return int(ts // self.bucket_s) * self.bucket_s

    def _prune(self) -> None:
        if self.newest is None:
            return
        oldest_kept = self._start(self.newest) - self.horizon_s + self.bucket_s
        for start in [s for s in self._buckets if s < oldest_kept]:
            del self._buckets[start]


class KeyedWindows:
    """A :class:`WindowedCounter` per key: item popularity over windows, by item_id.

    Kept beside ``ItemStats`` rather than inside it: these counts feed the feature store
    only, and the pipeline updates them once per accepted click.
    """

    def __init__(self, bucket_s: int = BUCKET_S, horizon_s: int = HORIZON_S) -> None:
        self.bucket_s = bucket_s
        self.horizon_s = horizon_s
        self._counters: dict[str, WindowedCounter] = {}
        self._newest: float | None = None
        self._adds = 0

    def add(self, key: str, ts: float, n: int = 1) -> bool:
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = WindowedCounter(self.bucket_s, self.horizon_s)
        if self._newest is None or ts > self._newest:
            self._newest = ts
        self._adds += 1
        if self._adds % _SWEEP_EVERY == 0:
            self._sweep()
        return counter.add(ts, n)

    def count(self, key: str, window_s: int, now: float | None = None) -> int:
        """Events for ``key`` in the ``window_s`` ending at ``now`` (default: its newest).

        A key idle for longer than the horizon (by the newest event of any key) may have
        been forgotten and counts 0, which is also what it counts at that newest time.
        """
        counter = self._counters.get(key)
        return counter.count(window_s, now) if counter is not None else 0

    def newest(self, key: str) -> float | None:
        """Event time of the newest event counted for ``key``."""
        counter = self._counters.get(key)
        return counter.newest if counter is not None else None

    def __len__(self) -> int:
        return len(self._counters)

    def _sweep(self) -> None:
        if self._newest is None:
            return
        cutoff = self._newest - self.horizon_s
        idle = [k for k, c in self._counters.items() if c.newest is None or c.newest < cutoff]
        for key in idle:
            del self._counters[key]
