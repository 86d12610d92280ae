"""Offset continuity: notices when the consumer skipped messages of a partition.

Seen after a kill -9 and restart, about once in ten runs
(tests/reliability/test_worker_faults.py): the restarted Faust worker answered a
partition's clicks up to one offset and from a later one, and never the 65 between.
Faust then (rightly) committed nothing past the first unanswered offset, so they were not
lost for good, but they waited for the next restart and the partition's lag never drained.

A message whose offset is past the next one expected on its partition means the messages
between were never handed to the agent. The agent then stops before it handles any of the
batch (nothing of it is answered, saved or acknowledged) and the worker exits; the stack
restarts it, and it reads on from the committed offset, in order: what it had answered is
dropped as duplicates (user state keeps each answered event id), what it skipped is
answered, and each user's clicks are applied in the order they were sent. Reading the
partition again in place (a seek) was tried first: it answered everything but applied the
skipped clicks after later ones, and Faust's commit bookkeeping did not recover from it.

The first message of a run (after an assignment) is checked against where the run must
start: the group's committed offset, when there is one. Session 15's CI lost 29 clicks
with that message unchecked: a restarted worker's first messages on a partition came from
past its committed offset, the agent handled them, and Faust, which records such a jump
as a gap in what it fetched and counts a gap as done once anything after it is acked,
committed past clicks nobody answered. A gap of one offset is allowed: a transactional
producer's commit marker takes one.

Not every jump is a skip: the broker may no longer hold the offsets between (retention
expired them while the worker was down, compaction, an aborted transaction's records).
Before stopping, :meth:`OffsetContinuity.verify_batch` asks the broker for the first record
a reader is given from the first missing offset on; if that is the message the consumer
handed over (or a later one), nothing was skipped and the run goes on from it. Without
that, a group whose committed offset fell out of retention would restart for ever.

The refused batch stays unacknowledged on the way out, and the skipped offsets
uncommitted, only because the worker commits nothing its agents did not finish
(ackgate.py): Faust itself acks the refused batch when it abandons it, and counts the
skipped offsets as done once anything after them is acked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any

log = logging.getLogger(__name__)

# The offset of the first record the broker hands a reader of (topic, partition) from
# an offset on, None if it gave none (services/kafka/io.py: first_offset_from).
FirstHeld = Callable[[str, int, int], Awaitable[int | None]]


class SkippedMessages(RuntimeError):
    """The consumer handed over a partition's messages with some missing before them."""


class OffsetContinuity:
    """Each partition's next expected offset.

    ``start(tp)`` gives where a partition's run must begin when nothing of it was seen
    since its assignment: the group's committed offset, or None if it has none (the
    consumer then starts wherever ``auto_offset_reset`` puts it, which is not checked).
    """

    def __init__(self, start: Callable[[Hashable], int | None] | None = None) -> None:
        self._next: dict[Hashable, int] = {}
        self._start = start

    def check(self, tp: Hashable, offset: int) -> int | None:
        """The first skipped offset if ``offset`` is past the next one expected on ``tp``
        by more than one (nothing is recorded then), else None (the offset is recorded)."""
        expected = self._next.get(tp)
        if expected is None and self._start is not None:
            expected = self._start(tp)
        if expected is not None and offset > expected + 1:
            return expected
        # Backwards (a seek, a redelivery) is followed.
        self._next[tp] = offset + 1
        return None

    def accept(self, tp: Hashable, offset: int) -> None:
        """Go on from ``offset``: the offsets before it that were expected hold nothing."""
        self._next[tp] = offset + 1

    async def verify_batch(self, events: Sequence[Any], first_held: FirstHeld) -> None:
        """Raise :class:`SkippedMessages` if any event of the batch follows skipped
        messages of its partition. A jump over offsets that hold no record a reader is
        given (``first_held`` asks the broker) is logged and followed, not a skip."""
        for event in events:
            msg = event.message
            skipped = self.check(msg.tp, msg.offset)
            if skipped is None:
                continue
            try:
                first = await first_held(msg.topic, msg.partition, skipped)
            except Exception as exc:  # the broker cannot tell: stop, as for a skip
                log.warning(
                    "could not ask the broker what %s[%d] holds: %s", msg.topic, msg.partition, exc
                )
                first = None
            if first is not None and first >= msg.offset:
                log.warning(
                    "%s[%d]: offsets %d..%d hold no record a reader is given (expired, "
                    "compacted or aborted); going on from %d",
                    msg.topic,
                    msg.partition,
                    skipped,
                    msg.offset - 1,
                    msg.offset,
                )
                self.accept(msg.tp, msg.offset)
                continue
            held = "nothing from there" if first is None else f"offset {first} from there"
            raise SkippedMessages(f"{_skipped(msg, skipped)} (the broker gave {held})")

    def forget(self, partitions: Iterable[Hashable]) -> None:
        """Partitions revoked: their next run starts wherever the group committed."""
        for tp in partitions:
            self._next.pop(tp, None)


def _skipped(msg: Any, skipped: int) -> str:
    return (
        f"{msg.topic}[{msg.partition}]: got offset {msg.offset} while {skipped} was next; "
        "the consumer skipped messages. Exiting so the worker restarts from the committed "
        "offset and reads them."
    )
