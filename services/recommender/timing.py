"""Where a worker's time goes: per-stage durations of recent micro-batches.

Each batch records how long each stage took (decode, state, candidates, scorer call,
re-rank and reasons, publish, feature write, ...). :class:`StageTimes` keeps the last
``window`` batches and summarises them for ``/healthz`` and the benchmarks: the median
and p99 milliseconds per batch, and the milliseconds per click over the window. Recording
is two ``perf_counter`` calls per stage, cheap enough to stay on in production.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

WINDOW = 2048


@dataclass
class BatchTimer:
    """The stages of one batch, in the order they ran (seconds)."""

    stages: dict[str, float] = field(default_factory=dict)
    _last: float = field(default_factory=time.perf_counter, repr=False)

    def lap(self, name: str) -> None:
        """Charge the time since the previous lap (or since the timer began) to ``name``."""
        now = time.perf_counter()
        self.add(name, now - self._last)
        self._last = now

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self.stages[name] = self.stages.get(name, 0.0) + seconds


class StageTimes:
    """Rolling per-stage timings over the last ``window`` batches."""

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self._stages: dict[str, deque[float]] = {}
        self._clicks: deque[int] = deque(maxlen=window)

    def record(self, timer: BatchTimer, clicks: int) -> None:
        """Add one batch. A stage a batch skipped counts as 0 s for it, so per-click
        figures stay comparable across stages."""
        self._clicks.append(clicks)
        for name in timer.stages.keys() | self._stages.keys():
            series = self._stages.get(name)
            if series is None:
                # A stage first seen now ran 0 s in the batches before it.
                series = deque([0.0] * (len(self._clicks) - 1), maxlen=self.window)
                self._stages[name] = series
            series.append(timer.stages.get(name, 0.0))

    def reset(self) -> None:
        """Forget every batch so far: a benchmark's next load is summarised alone."""
        self._stages.clear()
        self._clicks.clear()

    def summary(self) -> dict[str, dict[str, float]]:
        """stage -> {p50_ms, p99_ms (per batch), per_click_ms (window total / clicks)}."""
        clicks = max(1, sum(self._clicks))
        out: dict[str, dict[str, float]] = {}
        for name, series in self._stages.items():
            values = np.asarray(series) * 1000.0
            out[name] = {
                "p50_ms": round(float(np.percentile(values, 50)), 3),
                "p99_ms": round(float(np.percentile(values, 99)), 3),
                "per_click_ms": round(float(values.sum()) / clicks, 4),
            }
        if self._clicks:
            sizes = np.asarray(self._clicks)
            out["batch_size"] = {
                "p50": float(np.percentile(sizes, 50)),
                "p99": float(np.percentile(sizes, 99)),
                "mean": round(float(sizes.mean()), 2),
            }
        return out
