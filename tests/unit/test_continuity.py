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
    import asyncio

    async def held(topic: str, partition: int, offset: int) -> int | None:
        return offset  # the broker still holds what was skipped

    asyncio.run(seen.verify_batch(batch, held))
    jumped = [_Event(_Msg("clicks", 40))]
    jumped[0].message.tp, jumped[0].message.partition = "p0", 0  # type: ignore[attr-defined]
    with pytest.raises(SkippedMessages, match=r"clicks\[0\]: got offset 40 while 12 was next"):
        asyncio.run(seen.verify_batch(jumped, held))


def test_a_run_starts_at_the_committed_offset_when_there_is_one() -> None:
    # Session 15: a restarted worker's first messages on a partition came from past the
    # group's committed offset; unchecked, Faust committed past clicks nobody answered.
    committed = {"p0": 594, "p1": None}
    seen = OffsetContinuity(start=committed.get)
    assert seen.check("p0", 826) == 594, "the first message of a run is checked too"
    assert seen.check("p0", 595) is None, "a transaction marker at the committed offset"
    assert seen.check("p1", 826) is None, "no commit yet: wherever auto_offset_reset starts"
    seen.forget(["p0"])
    committed["p0"] = 900
    assert seen.check("p0", 900) is None, "a new run checks against the new commit"


def _events(tp: str, partition: int, offsets: list[int]) -> list[_Event]:
    events = [_Event(_Msg("clicks", o)) for o in offsets]
    for e in events:
        e.message.tp, e.message.partition = tp, partition  # type: ignore[attr-defined]
    return events


def test_a_jump_over_offsets_the_broker_still_holds_stops_the_batch() -> None:
    import asyncio

    import pytest

    from services.recommender.continuity import SkippedMessages

    asked: list[tuple[str, int, int]] = []

    async def holds_them(topic: str, partition: int, offset: int) -> int | None:
        asked.append((topic, partition, offset))
        return offset

    seen = OffsetContinuity(start={"p2": 594}.get)
    with pytest.raises(
        SkippedMessages, match=r"got offset 826 while 594 was next.*gave offset 594"
    ):
        asyncio.run(seen.verify_batch(_events("p2", 2, [826, 827]), holds_them))
    assert asked == [("clicks", 2, 594)]
    assert seen.check("p2", 594) is None, "nothing of the refused batch was recorded"


def test_a_jump_over_offsets_the_broker_no_longer_holds_goes_on() -> None:
    import asyncio

    async def expired(topic: str, partition: int, offset: int) -> int | None:
        return 826  # retention deleted 594..825 while the worker was down

    seen = OffsetContinuity(start={"p2": 594}.get)
    asyncio.run(seen.verify_batch(_events("p2", 2, [826, 827, 828]), expired))
    assert seen.check("p2", 829) is None, "the run goes on from the first record held"


def test_a_broker_that_cannot_say_counts_as_a_skip() -> None:
    import asyncio

    import pytest

    from services.recommender.continuity import SkippedMessages

    async def silent(topic: str, partition: int, offset: int) -> int | None:
        return None

    async def down(topic: str, partition: int, offset: int) -> int | None:
        raise RuntimeError("broker down")

    for first_held in (silent, down):
        seen = OffsetContinuity(start={"p2": 594}.get)
        with pytest.raises(SkippedMessages, match="gave nothing from there"):
            asyncio.run(seen.verify_batch(_events("p2", 2, [826]), first_held))
