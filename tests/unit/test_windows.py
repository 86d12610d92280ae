"""Event-time windowed counters: bucketing, out-of-order events, the horizon, JSON."""

from __future__ import annotations

import doctest
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.recommender import windows
from services.recommender.windows import (
    BUCKET_S,
    DAY_S,
    HORIZON_S,
    HOUR_S,
    KeyedWindows,
    WindowedCounter,
)

T0 = 1_714_564_800.0  # 2024-05-01 12:00 UTC, on a bucket boundary


def test_counts_over_the_last_hour_and_day_end_at_the_newest_event() -> None:
    c = WindowedCounter()
    for minutes in (0, 10, 90, 23 * 60, 23 * 60 + 30):
        assert c.add(T0 + minutes * 60)
    assert c.count(HOUR_S) == 2  # 23:00 and 23:30
    assert c.count(DAY_S) == 5
    # A window can end at another time: an hour after 01:30 only the 01:30 click counts.
    assert c.count(HOUR_S, now=T0 + 90 * 60) == 1


def test_an_hour_is_whole_buckets_up_to_the_newest() -> None:
    c = WindowedCounter()
    newest = T0 + 10 * HOUR_S + 1
    c.add(newest - HOUR_S + BUCKET_S)  # 55 minutes earlier: inside
    c.add(newest - HOUR_S)  # 60 minutes earlier, in the bucket just outside
    c.add(newest)
    assert c.count(HOUR_S) == 2


def test_out_of_order_events_inside_the_horizon_count_in_their_bucket() -> None:
    c = WindowedCounter()
    c.add(T0 + 20 * HOUR_S)
    assert c.add(T0 + 19 * HOUR_S + 30 * 60)  # late, but within the last hour
    assert c.add(T0 + 2 * HOUR_S)  # late, within the day
    assert c.count(HOUR_S) == 2
    assert c.count(DAY_S) == 3
    assert c.newest == T0 + 20 * HOUR_S  # a late event does not move the clock back


def test_events_older_than_the_horizon_are_ignored() -> None:
    c = WindowedCounter()
    c.add(T0 + 2 * DAY_S)
    assert not c.add(T0 + DAY_S)  # exactly a day behind: its bucket is out
    assert not c.add(T0)
    assert c.count(DAY_S) == 1


def test_memory_stays_bounded_by_the_horizon() -> None:
    c = WindowedCounter()
    for k in range(3 * DAY_S // BUCKET_S):
        c.add(T0 + k * BUCKET_S)
    assert len(c) == HORIZON_S // BUCKET_S
    assert c.count(DAY_S) == HORIZON_S // BUCKET_S


def test_an_empty_counter_counts_nothing() -> None:
    c = WindowedCounter()
    assert c.count(HOUR_S) == 0 and c.newest is None
    assert WindowedCounter.from_json(None) == c


def test_windows_beyond_the_horizon_or_bad_buckets_are_refused() -> None:
    with pytest.raises(ValueError, match="window_s"):
        WindowedCounter().count(2 * DAY_S)
    with pytest.raises(ValueError, match="multiple"):
        WindowedCounter(bucket_s=7 * 60, horizon_s=HOUR_S)


def test_json_round_trips_through_text() -> None:
    c = WindowedCounter()
    for minutes in (0, 1, 61, 600):
        c.add(T0 + minutes * 60 + 0.25)
    back = WindowedCounter.from_json(json.loads(json.dumps(c.to_json())))
    assert back == c
    assert back.count(HOUR_S) == c.count(HOUR_S) and back.count(DAY_S) == c.count(DAY_S)


def test_saved_buckets_are_recut_when_the_bucket_size_changes() -> None:
    c = WindowedCounter(bucket_s=60)
    for minutes in (0, 1, 2, 59):
        c.add(T0 + minutes * 60)
    coarse = WindowedCounter.from_json(c.to_json(), bucket_s=HOUR_S)
    assert coarse.count(HOUR_S) == 4 and len(coarse) == 1


@given(st.lists(st.floats(min_value=0, max_value=3 * DAY_S), max_size=60))
def test_counts_match_a_brute_force_recount(offsets: list[float]) -> None:
    c = WindowedCounter()
    kept: list[float] = []
    for offset in offsets:
        ts = T0 + offset
        if c.add(ts):
            kept.append(ts)
    if not kept:
        return
    newest_bucket = (max(kept) // BUCKET_S) * BUCKET_S
    for window in (HOUR_S, DAY_S):
        first = newest_bucket - (window // BUCKET_S - 1) * BUCKET_S
        expected = sum(1 for ts in kept if ts >= first)
        assert c.count(window) == expected
    assert len(c) <= HORIZON_S // BUCKET_S


def test_keyed_windows_count_per_key_at_each_keys_newest_event() -> None:
    w = KeyedWindows()
    for minutes in (0, 5, 120):
        w.add("a", T0 + minutes * 60)
    w.add("b", T0 + 3 * DAY_S)
    assert w.count("a", HOUR_S) == 1 and w.count("a", DAY_S) == 3
    assert w.newest("a") == T0 + 120 * 60
    assert w.count("ghost", DAY_S) == 0 and w.newest("ghost") is None


def test_keyed_windows_forget_keys_idle_beyond_the_horizon() -> None:
    w = KeyedWindows()
    w.add("old", T0)
    for k in range(10_000):
        w.add("busy", T0 + 2 * DAY_S + k)
    assert len(w) == 1 and w.newest("old") is None


def test_the_docstring_examples_run() -> None:
    assert doctest.testmod(windows).failed == 0
