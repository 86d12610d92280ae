"""Offset continuity: a partition's skipped messages are noticed; redelivery, a new
assignment and a transaction marker's one-offset gap are not."""

from __future__ import annotations

from services.recommender.continuity import OffsetContinuity


def test_in_order_and_backwards_offsets_are_no_gap() -> None:
    seen = OffsetContinuity()
    assert [seen.check("p0", o) for o in (5, 6, 7, 3, 4, 5, 6, 7, 8)] == [None] * 9


def test_a_jump_reports_the_first_skipped_offset_and_records_nothing() -> None:
    seen = OffsetContinuity()
    assert seen.check("p1", 194) is None
    assert seen.check("p1", 260) == 195, "195..259 were never handed over"
    assert seen.check("p1", 261) == 195, "still waiting for 195"
    assert seen.check("p0", 10) is None, "other partitions are their own"
    assert all(seen.check("p1", o) is None for o in range(195, 262))


def test_one_offset_gap_is_a_transaction_marker() -> None:
    seen = OffsetContinuity()
    assert seen.check("p0", 10) is None and seen.check("p0", 12) is None
    assert seen.check("p0", 15) == 13


def test_a_new_assignment_starts_unchecked() -> None:
    seen = OffsetContinuity()
    assert seen.check("p0", 10) is None
    seen.forget(["p0"])
    assert seen.check("p0", 500) is None, "the group committed 500 meanwhile elsewhere"
