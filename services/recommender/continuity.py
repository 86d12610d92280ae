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

Only a jump within one run of a partition counts (the first message after an assignment
is not checked). A gap of one offset is allowed: a transactional producer's commit marker
takes one.

The refused batch stays unacknowledged on the way out, and the skipped offsets
uncommitted, only because the worker commits nothing its agents did not finish
(ackgate.py): Faust itself acks the refused batch when it abandons it, and counts the
skipped offsets as done once anything after them is acked.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any


class SkippedMessages(RuntimeError):
    """The consumer handed over a partition's messages with some missing before them."""


class OffsetContinuity:
    """Each partition's next expected offset."""

    def __init__(self) -> None:
        self._next: dict[Hashable, int] = {}

    def check(self, tp: Hashable, offset: int) -> int | None:
        """The first skipped offset if ``offset`` is past the next one expected on ``tp``
        by more than one (nothing is recorded then), else None (the offset is recorded)."""
        expected = self._next.get(tp)
        if expected is not None and offset > expected + 1:
            return expected
        # Backwards (a seek, a redelivery) is followed.
        self._next[tp] = offset + 1
        return None

    def check_batch(self, events: Sequence[Any]) -> None:
        """Raise :class:`SkippedMessages` if any event of the batch follows skipped
        messages of its partition."""
        for event in events:
            msg = event.message
            skipped = self.check(msg.tp, msg.offset)
            if skipped is not None:
                raise SkippedMessages(
                    f"{msg.topic}[{msg.partition}]: got offset {msg.offset} while "
                    f"{skipped} was next; the consumer skipped messages. Exiting so the "
                    "worker restarts from the committed offset and reads them."
                )

    def forget(self, partitions: Iterable[Hashable]) -> None:
        """Partitions revoked: their next run starts wherever the group committed."""
        for tp in partitions:
            self._next.pop(tp, None)
