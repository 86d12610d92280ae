"""Python's garbage collector in the worker: the startup heap frozen, pauses measured.

A full (generation 2) collection walks every container object the process holds. The
worker's imports alone (Feast, pandas, pyarrow, river, Faust, tritonclient) leave
~384,000 of them, and one full collection took 180-256 ms in the stack benchmark: a stall
of every click in flight (docs/BENCHMARKS.md, session 13). Those objects live as long as the
process, so walking them finds nothing. :func:`freeze` moves everything alive into the
permanent generation, which collections skip: the worker calls it before it starts, and
again once its first batch has found the shared state caught up (catalog, embeddings,
co-visitation and the recovered users are then in memory). Later garbage is collected
as before; what is frozen is never freed, which is what long-lived state wants anyway.

:class:`GcPauses` times every collection through ``gc.callbacks`` into
``streamrec_gc_pause_seconds{generation}``, so a pause shows as what it is rather than as
unexplained batch latency.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

log = logging.getLogger(__name__)

# From tens of microseconds (a young collection) to the ~200 ms of an unfrozen full one.
PAUSE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

# How many objects :func:`freeze` left frozen. Kept here because ``gc.get_freeze_count()``
# walks the whole permanent generation: 3.5 ms for 400,000 objects, and /healthz is polled
# (it was 3.8% of the worker's main thread in a flat-out py-spy profile, session 14).
_frozen = 0


def freeze(reason: str) -> int:
    """Move every object alive now out of the collector's reach; returns how many are
    frozen in all. A collection first, so the garbage lying about is not kept forever."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    global _frozen
    frozen = _frozen = gc.get_freeze_count()
    log.info(
        "gc: %d objects frozen (%s) in %.0f ms",
        frozen,
        reason,
        (time.perf_counter() - started) * 1000,
    )
    return frozen


def young_threshold(objects: int) -> tuple[int, int, int]:
    """Collect the youngest generation after ``objects`` net allocations instead of
    Python's 700; the older generations' thresholds are kept. Returns the thresholds.

    A young collection walks every reference of every young container, and each click
    allocates a few the size of a heavy user (the seen set, slices of the ranked lists, a
    copy of the user state: up to 2,000 entries each). At 700 a collection ran every few
    clicks, mostly while such containers were alive, and the collections took 40% of the
    per-click time of ``tests.bench.pipeline_hot_path`` (1.03 -> 0.56 ms per click at
    50,000; docs/BENCHMARKS.md, session 16). Fewer collections also promote fewer
    short-lived objects, so the older generations are collected less often too.
    """
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(objects, middle, oldest)
    return (objects, middle, oldest)


class GcPauses:
    """Times each collection; ``install`` hooks it into ``gc.callbacks``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.histogram = Histogram(
            "streamrec_gc_pause_seconds",
            "Time the worker stood still in one garbage collection, by generation.",
            ["generation"],
            buckets=PAUSE_BUCKETS,
            registry=registry,
        )
        self._children = [self.histogram.labels(generation=str(g)) for g in range(3)]
        self.count = [0, 0, 0]
        self.max_s = [0.0, 0.0, 0.0]
        self._started = 0.0
        # Pauses not yet in the histogram: see __call__.
        self._pending: deque[tuple[int, float]] = deque()

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside whatever allocation set the collection off, so it must take no lock:
        # prometheus_client's multiprocess values hold a module-wide Lock while they build
        # a key (json.dumps allocates), and a collection there whose callback observed the
        # histogram waited on that lock for ever: the worker's main thread stopped after
        # its first batch, timers and all (session 15, py-spy; the "stall" of sessions 14
        # and 15). Plain counters and a deque append only; :meth:`flush` observes.
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        generation = info["generation"]
        self.count[generation] += 1
        self.max_s[generation] = max(self.max_s[generation], took)
        self._pending.append((generation, took))

    def flush(self) -> int:
        """Observe the pauses recorded since the last flush; returns how many. Call it
        outside the collector's callbacks (before a scrape, on a timer)."""
        flushed = 0
        while self._pending:
            generation, took = self._pending.popleft()
            self._children[generation].observe(took)
            flushed += 1
        return flushed

    def install(self) -> GcPauses:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        return self

    def uninstall(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)
        self.flush()

    def to_json(self) -> dict[str, Any]:
        """For /healthz: collections and the longest pause per generation, how many
        objects are frozen, and the collector's thresholds."""
        return {
            "collections": list(self.count),
            "thresholds": list(gc.get_threshold()),
            "max_pause_ms": [round(s * 1000, 1) for s in self.max_s],
            "frozen_objects": _frozen,
        }
