"""The worker's /memory report: resident size, and the heap's growth by allocation site."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.recommender.memory import MemoryReport, allocator_bytes, resident_bytes


@pytest.fixture
def tracing() -> Iterator[None]:
    was = tracemalloc.is_tracing()
    MemoryReport.start(3)
    yield
    if not was:
        tracemalloc.stop()


def test_resident_bytes_reads_this_process_and_none_without_proc(tmp_path: Path) -> None:
    assert (resident_bytes() or 0) > 10 * 2**20  # an interpreter with pytest loaded
    assert resident_bytes(tmp_path / "missing") is None


def test_without_tracing_the_report_says_how_to_turn_it_on() -> None:
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is on for the whole run")
    report = MemoryReport().report()
    assert report["tracing"] is False
    assert "STREAMREC_TRACEMALLOC_FRAMES" in report["hint"]
    assert report["rss_bytes"] > 0


def test_without_tracing_growth_shows_in_the_allocator_and_python_counts() -> None:
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is on for the whole run")
    memory = MemoryReport()
    assert memory.report()["baseline"] == "taken now"
    held = [bytes(1000) for _ in range(20_000)]  # ~20 MB of Python objects
    kept = [Marker() for _ in range(3000)]
    report = memory.report()
    assert report["growth_by_type"]["Marker"] == 3000
    growth = report["growth"]
    assert growth["python"]["allocated_blocks"] >= 20_000
    if allocator_bytes() is not None:  # glibc: 1 KB objects come from malloc
        assert growth["allocator"]["in_use"] > 15_000_000
    del held, kept


class Marker:
    """An instance type only this test makes, to find in the census."""


def test_growth_is_attributed_to_the_line_that_allocated(tracing: None) -> None:
    memory = MemoryReport(top=5)
    assert memory.report()["baseline"] == "taken now"
    held = [bytes(1000) for _ in range(5000)]  # ~5 MB from this line
    report = memory.report()
    top = report["growth_by_site"][0]
    assert top["where"][0].endswith(f"test_memory.py:{held_line()}")
    assert top["size_diff"] > 4_000_000
    assert report["heap_growth_bytes"] > 4_000_000
    del held
    # A reset takes a new baseline: nothing has grown since it.
    assert memory.report(reset=True)["baseline"] == "taken now"
    assert memory.report()["heap_growth_bytes"] < 1_000_000


def held_line() -> int:
    """The line of the allocation above, found rather than hard-coded."""
    lines = Path(__file__).read_text().splitlines()
    marker = "held = [bytes(1000) for _ in range(5000)]"
    return next(i for i, line in enumerate(lines, 1) if marker in line)


def test_a_trim_gives_free_pages_in_the_middle_of_the_heap_back_to_the_os() -> None:
    if allocator_bytes() is None:
        pytest.skip("not glibc: there is no malloc_trim to call")
    memory = MemoryReport()
    # ~60 MB in blocks glibc serves from its heap (over pymalloc's 512 bytes), then all
    # but every 16th freed: the survivors pin the heap's top, so glibc keeps the freed
    # pages between them resident on its own.
    blocks = [bytes(1500) + bytes([i % 256]) for i in range(40_000)]
    survivors = blocks[::16]
    del blocks
    result = memory.trim()
    assert result is not None and result["released"]
    assert result["rss_freed_bytes"] > 20 * 2**20
    report = memory.report()
    assert report["malloc_trims"]["count"] == 1
    assert report["malloc_trims"]["rss_freed_bytes"] == result["rss_freed_bytes"]
    assert len(survivors) == 2_500
