"""The ack gate: a message's offset may be committed only once an agent has handled it.

The worker is at-least-once: an offset is committed only after its click's answer (or its
dead letter) is on the broker. Faust acknowledges messages on paths that do not know that:

- ``Stream.take_events`` acks every event of the batch it yielded in its ``finally``,
  which also runs when the agent raised and the abandoned generator is finalized (the
  consumer's shutdown forces that: ``wait_empty`` calls ``gc.collect()`` before its last
  commit). A batch refused on skipped messages (continuity.py) was committed unanswered.
- A stream acks, as "skipped", a message it takes from its channel while flow control is
  off or whose rebalance generation is over: what sat in the buffers during a shutdown
  or a rebalance.

And the consumer counts offsets it never handed over (a gap in what it fetched) as done
once anything after them is acked. Session 12's test 1 lost 16 clicks through these:
the restarted worker stopped on skipped messages, and the refused batch's clicks on
every partition, with the skipped offsets, were committed.

So agents mark what they finished (:meth:`AckGate.handled`, just before the batch is
acknowledged), and the worker's consumer (transport.py) records an ack only for a marked
message of a gated topic. Any other ack of such a message is refused: the message is let
go (so a shutdown does not wait for it) but its offset is never committed, and a
restarted or rebalanced worker reads it again. Answers already given to a message read
again are dropped as duplicates (user state keeps each answered event id).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any


class AckGate:
    """Which messages of the gated topics an agent has finished with."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = frozenset(topics)
        # Faust messages carry __weakref__: one finished batch is acked and dropped at
        # once, so this holds next to nothing.
        self._handled: weakref.WeakSet[Any] = weakref.WeakSet()
        self.refused = 0  # acks refused since start, for logs and tests

    def handled(self, events: Iterable[Any]) -> None:
        """The agent is done with these events: their acks may go through."""
        add = self._handled.add
        for event in events:
            add(event.message)

    def allows(self, message: Any) -> bool:
        """Whether an ack of ``message`` may be recorded for commit."""
        return message.topic not in self.topics or message in self._handled
