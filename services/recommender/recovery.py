"""Table recovery that survives a changelog log being replaced under a running worker.

Faust remembers, per changelog partition, the last offset it applied (standby partitions
move on with every record the other worker writes). When a rebalance finds that offset
past the log's end it raises ``ConsistencyError`` and the worker stops. On Kafka that means
someone deleted data. On tansu with memory storage it is what a broker restart looks like:
the broker comes back empty, every changelog starts again at 0, and with two workers both
stopped and were restarted with empty state (issue 7, test 12 at full scale), their
catalogs rebuilt from a feed that no longer held the items sent before the restart.

Here an applied offset past the end is taken as a replaced log: the partition is read
again from its new start, with a warning. What the worker holds in memory stays (the new
log only repeats or extends it; nothing in it deletes a key the old log wrote), so users'
state and the catalog survive the broker's restart. Reading a partition again from its
start is always safe, only slower: changelog records are whole values, last write wins.
The ends compared are true ends (``transport.py`` refines the ones tansu lists).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from faust.tables import TableManager as FaustTableManager
from faust.tables.recovery import Recovery as FaustRecovery
from faust.types import TP
from faust.types.transports import ConsumerT

log = logging.getLogger(__name__)


def replaced(applied: Mapping[TP, int | None], ends: Mapping[TP, int | None]) -> list[TP]:
    """Partitions whose last applied offset is at or past their log's end (the next
    offset to be written): their log was replaced since they were read."""
    return sorted(
        (
            tp
            for tp, offset in applied.items()
            if offset is not None
            and offset >= 0
            and (end := ends.get(tp)) is not None
            and offset >= end
        ),
        key=lambda tp: (tp.topic, tp.partition),
    )


class Recovery(FaustRecovery):
    """Faust's recovery, reading a replaced changelog partition again from its start."""

    resets = 0  # partitions read again after their log was replaced (for /healthz)

    async def _build_offsets(
        self, consumer: ConsumerT, tps: set[TP], destination: Counter[TP], title: str
    ) -> None:
        known = {tp: destination[tp] for tp in tps if tp in destination}
        if known:
            ends = await consumer.highwaters(*known)
            for tp in replaced(known, ends):
                log.warning(
                    "changelog %s[%d] (%s) ends at %s but offset %d was applied: the log "
                    "was replaced (a broker restarted on memory storage?); reading it "
                    "again from its start, keeping the table as it is",
                    tp.topic,
                    tp.partition,
                    title,
                    ends.get(tp),
                    known[tp],
                )
                destination[tp] = -1
                self.resets += 1
        await super()._build_offsets(consumer, tps, destination, title)

    # Both ways Faust ends a recovery resume the stream partitions before they are sought
    # to the committed offsets and before the streams' buffers are cleared; the worker's
    # consumer holds them back until the flow resumes (transport.py, resume_after_flow).
    async def _resume_streams(self, generation_id: int = 0) -> None:
        with _resume_after_flow(self.app.consumer):
            await super()._resume_streams(generation_id)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        with _resume_after_flow(self.app.consumer):
            await super().on_recovery_completed(generation_id)


def _resume_after_flow(consumer: Any) -> AbstractContextManager[None]:
    hold = getattr(consumer, "resume_after_flow", None)
    return hold() if hold is not None else nullcontext()


class TableManager(FaustTableManager):
    """Faust's table manager with :class:`Recovery` (``faust.App(TableManager=...)``)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        assert isinstance(self._recovery, Recovery)
        return self._recovery
