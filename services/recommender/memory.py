"""Where the worker's memory goes: resident size, the allocator, the Python heap by site.

The soak (issue 7, test 15) asks that resident memory stay flat. When it does not, the
question is whether the growth is Python objects (the users' state, bounded by its caps, or
a leak), memory the C allocator holds but no one uses (fragmentation), or native memory
outside it. This answers it from inside the process, cheaply enough to leave on: resident
size from /proc, glibc's ``mallinfo2`` (in use, free but kept, mmapped) and Python's
allocated block count, each with its change since the first report (the baseline;
``reset`` takes a new one). Started with ``STREAMREC_TRACEMALLOC_FRAMES`` > 0 the report
also lists the allocation sites that grew most; tracing slows the worker several-fold.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any


class _MallInfo2(ctypes.Structure):
    # glibc >= 2.33; every field a size_t.
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
            "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _libc_function(name: str, restype: Any, argtypes: list[Any]) -> Any:
    """glibc's ``name``, or None where the C library lacks it (not glibc, or too old)."""
    try:
        fn = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None
    fn.restype, fn.argtypes = restype, argtypes
    return fn


_MALLINFO2 = _libc_function("mallinfo2", _MallInfo2, [])  # glibc >= 2.33
_MALLOC_TRIM = _libc_function("malloc_trim", ctypes.c_int, [ctypes.c_size_t])


def trim() -> dict[str, Any] | None:
    """Hand the pages glibc holds free back to the OS (``malloc_trim(0)``), or None where
    that is not glibc.

    glibc returns freed memory to the OS only from the top of a heap; pages free in its
    middle stay resident, and a worker's churn of short-lived objects (decoded records,
    candidate lists) leaves many. ``malloc_trim`` releases every whole free page in every
    arena (glibc >= 2.8 walks the free lists, not just the top). It locks one arena at a
    time; run from a thread it costs the event loop at most a brief wait on an allocation.
    """
    if _MALLOC_TRIM is None:
        return None
    before, started = resident_bytes(), time.perf_counter()
    released = bool(_MALLOC_TRIM(0))
    seconds, after = time.perf_counter() - started, resident_bytes()
    return {
        "released": released,
        "rss_freed_bytes": None if before is None or after is None else before - after,
        "seconds": round(seconds, 4),
    }


def allocator_bytes() -> dict[str, int] | None:
    """glibc's view of the heap (main arena and the threads' arenas), or None elsewhere.

    ``in_use``: handed out and not freed. ``free_kept``: freed but still mapped, which
    grows when the heap fragments. ``mmapped``: large blocks mapped on their own.
    """
    if _MALLINFO2 is None:
        return None
    info = _MALLINFO2()
    return {"in_use": info.uordblks, "free_kept": info.fordblks, "mmapped": info.hblkhd}


def python_objects(census: Counter[str]) -> dict[str, int]:
    """Blocks Python's allocator holds, and objects the garbage collector tracks (the
    total of :func:`object_census`, so the objects are walked once per report)."""
    return {"allocated_blocks": sys.getallocatedblocks(), "gc_objects": census.total()}


def object_census() -> Counter[str]:
    """Objects the garbage collector tracks, by type (containers and instances: strings
    and numbers are not tracked). ~0.1 s for half a million objects."""
    return Counter(type(o).__qualname__ for o in gc.get_objects())


def resident_bytes(status: Path = Path("/proc/self/status")) -> int | None:
    """VmRSS of this process, or None where /proc is not there (not Linux)."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class MemoryReport:
    """Resident size, allocator and Python object counts, and with tracemalloc on the
    heap's growth by site, each against a baseline (the first report, or a reset)."""

    def __init__(self, top: int = 25) -> None:
        self.top = top
        self._baseline: dict[str, Any] | None = None
        self._snapshot: tracemalloc.Snapshot | None = None
        self._census: Counter[str] = Counter()
        # Periodic trims (``trim``): how many, what they gave back, the last one.
        self.trims: dict[str, Any] = {"count": 0, "rss_freed_bytes": 0, "last": None}

    def trim(self) -> dict[str, Any] | None:
        """:func:`trim`, counted in the report; safe to call from another thread."""
        result = trim()
        if result is not None:
            self.trims = {
                "count": self.trims["count"] + 1,
                "rss_freed_bytes": self.trims["rss_freed_bytes"]
                + max(0, result["rss_freed_bytes"] or 0),
                "last": result,
            }
        return result

    @staticmethod
    def start(frames: int) -> None:
        """Trace allocations from now on (``frames`` per traceback); 0 leaves it off."""
        if frames > 0 and not tracemalloc.is_tracing():
            tracemalloc.start(frames)

    def report(self, reset: bool = False) -> dict[str, Any]:
        census = object_census()
        figures: dict[str, Any] = {
            "rss_bytes": resident_bytes(),
            "allocator": allocator_bytes(),
            "python": python_objects(census),
        }
        out: dict[str, Any] = {
            **figures,
            "tracing": tracemalloc.is_tracing(),
            "malloc_trims": self.trims,
        }
        snapshot = None
        if tracemalloc.is_tracing():
            current, peak = tracemalloc.get_traced_memory()
            out.update(traced_bytes=current, traced_peak_bytes=peak)
            snapshot = tracemalloc.take_snapshot().filter_traces(
                (tracemalloc.Filter(False, tracemalloc.__file__),)
            )
        else:
            out["hint"] = "start the worker with STREAMREC_TRACEMALLOC_FRAMES=5 for heap sites"
        if reset or self._baseline is None:
            self._baseline, self._snapshot, self._census = figures, snapshot, census
            out["baseline"] = "taken now"
            return out
        out["growth"] = _diff(figures, self._baseline)
        census.subtract(self._census)
        out["growth_by_type"] = dict(census.most_common(self.top))
        if snapshot is not None and self._snapshot is not None:
            stats = snapshot.compare_to(self._snapshot, "traceback")
            out["heap_growth_bytes"] = sum(s.size_diff for s in stats)
            out["growth_by_site"] = [
                {
                    "size_diff": s.size_diff,
                    "size": s.size,
                    "count_diff": s.count_diff,
                    # The allocating line first, then its callers.
                    "where": [f"{f.filename}:{f.lineno}" for f in reversed(s.traceback)],
                }
                for s in sorted(stats, key=lambda s: s.size_diff, reverse=True)[: self.top]
            ]
        return out


def _diff(now: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """``now - then`` for every number in two reports of the same shape (None stays None)."""
    out: dict[str, Any] = {}
    for key, value in now.items():
        before = then.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            out[key] = _diff(value, before)
        elif isinstance(value, int) and isinstance(before, int):
            out[key] = value - before
        else:
            out[key] = None
    return out
