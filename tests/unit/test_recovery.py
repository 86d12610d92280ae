"""A changelog partition whose log was replaced is read again from its start.

The real path is test 12 at full scale (tests/reliability/test_broker_restart.py: two
workers, tansu restarted empty under them); this checks the decision and its wiring into
the worker's Faust app, with the consumer's answers given.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping

import faust
from faust.types import TP

from services.recommender.recovery import Recovery, TableManager, replaced

A, B, C = (TP("streamrec-users-changelog", p) for p in range(3))


def test_an_applied_offset_at_or_past_the_end_means_the_log_was_replaced() -> None:
    # Ends are the next offset to be written: offset 9 applied with end 10 is caught up.
    assert replaced({A: 9, B: 10, C: 166}, {A: 10, B: 10, C: 0}) == [B, C]
    # Nothing applied yet (-1 or None, both Faust's), or no end known: nothing to say.
    assert replaced({A: -1, B: 5, C: None}, {A: 0, C: 0}) == []


class _Consumer:
    def __init__(self, ends: Mapping[TP, int], earliest: Mapping[TP, int]) -> None:
        self.ends, self.earliest = ends, earliest

    async def highwaters(self, *tps: TP) -> Mapping[TP, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def earliest_offsets(self, *tps: TP) -> Mapping[TP, int]:
        return {tp: self.earliest[tp] for tp in tps}


def test_the_worker_app_reads_a_replaced_changelog_again_instead_of_stopping() -> None:
    app = faust.App("recovery-test", TableManager=TableManager, store="memory://")
    recovery = app.tables.recovery  # type: ignore[attr-defined]
    assert isinstance(recovery, Recovery)

    # Standby offsets as the other worker's writes left them; then a broker restart on
    # memory storage: C's new log holds 3 records, B's is caught up, A never read.
    offsets: Counter[TP] = Counter({B: 41, C: 166})
    consumer = _Consumer(ends={A: 7, B: 42, C: 3}, earliest={A: 0, B: 0, C: 0})
    asyncio.run(recovery._build_offsets(consumer, {A, B, C}, offsets, "standby"))

    # C starts again at the new log's beginning (-1: seek to 0); B goes on where it was;
    # A is Faust's own start (0: a Counter's missing key, also a seek to 0). Faust's own
    # check (applied offset > highwater) now finds nothing to stop for.
    assert offsets == {A: 0, B: 41, C: -1}
    assert recovery.resets == 1
