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


class _Msg:
    def __init__(self, topic: str, offset: int) -> None:
        self.topic, self.offset = topic, offset


class _Event:
    def __init__(self, message: _Msg) -> None:
        self.message = message


def test_the_ack_gate_lets_through_only_handled_messages_of_its_topics() -> None:
    from services.recommender.ackgate import AckGate

    gate = AckGate(["clicks"])
    done, pending, other = _Msg("clicks", 1), _Msg("clicks", 2), _Msg("users-changelog", 3)
    gate.handled([_Event(done)])
    assert gate.allows(done)
    assert not gate.allows(pending), "a message no agent finished is never committed"
    assert gate.allows(other), "topics the agents do not read keep Faust's own acks"


def test_a_skip_raises_before_any_event_is_recorded_past_it() -> None:
    import pytest

    from services.recommender.continuity import SkippedMessages

    seen = OffsetContinuity()
    batch = [_Event(_Msg("clicks", o)) for o in (10, 11)]
    for e in batch:
        e.message.tp = "p0"  # type: ignore[attr-defined]
        e.message.partition = 0  # type: ignore[attr-defined]
    seen.check_batch(batch)
    jumped = [_Event(_Msg("clicks", 40))]
    jumped[0].message.tp, jumped[0].message.partition = "p0", 0  # type: ignore[attr-defined]
    with pytest.raises(SkippedMessages, match=r"clicks\[0\]: got offset 40 while 12 was next"):
        seen.check_batch(jumped)
