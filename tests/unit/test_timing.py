"""Per-stage timing of micro-batches (services/recommender/timing.py)."""

from __future__ import annotations

import time

import pytest

from services.recommender.timing import BatchTimer, StageTimes


def test_laps_charge_the_time_since_the_previous_lap(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake clock: a real sleep overshoots by milliseconds on a loaded machine.
    clock = iter([100.25, 100.25])
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    timer = BatchTimer(_last=100.0)
    timer.lap("a")
    timer.lap("b")
    timer.add("a", 1.0)
    assert timer.stages == {"a": 1.25, "b": 0.0}


def test_summary_gives_percentiles_per_batch_and_time_per_click() -> None:
    times = StageTimes(window=10)
    for seconds in (0.001, 0.002, 0.003):
        times.record(BatchTimer({"score": seconds}), clicks=2)
    times.record(BatchTimer({"score": 0.004, "late": 0.006}), clicks=2)
    summary = times.summary()
    assert summary["score"]["p50_ms"] == pytest.approx(2.5)
    assert summary["score"]["per_click_ms"] == pytest.approx(10.0 / 8)
    # A stage first seen late counts 0 s for the batches before it.
    assert summary["late"]["per_click_ms"] == pytest.approx(6.0 / 8)
    assert summary["late"]["p50_ms"] == 0.0
    assert summary["batch_size"]["mean"] == 2.0


def test_the_window_forgets_old_batches() -> None:
    times = StageTimes(window=2)
    for seconds in (1.0, 0.001, 0.001):
        times.record(BatchTimer({"s": seconds}), clicks=1)
    assert times.summary()["s"]["p99_ms"] < 2.0


def test_a_reset_starts_the_summary_afresh() -> None:
    times = StageTimes()
    times.record(BatchTimer({"s": 1.0, "gone": 1.0}), clicks=1)
    times.reset()
    assert times.summary() == {}
    times.record(BatchTimer({"s": 0.002}), clicks=4)
    summary = times.summary()
    # Nothing of the first batch: neither its time nor its stage nor its size.
    assert set(summary) == {"s", "batch_size"}
    assert summary["s"]["per_click_ms"] == pytest.approx(0.5)
    assert summary["batch_size"]["mean"] == 4.0
