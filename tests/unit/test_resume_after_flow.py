"""Stream partitions resumed as a recovery ends wait for the flow to resume.

Faust resumes them, seeks them to the committed offsets, then resumes flow control,
which clears every stream's buffer: messages fetched in between were dropped unseen
(services/recommender/transport.py, ``resume_after_flow``). The whole path runs on the
real broker in tests/reliability/test_worker_faults.py (test 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from faust.types import TP

from services.recommender.transport import App

CLICKS0, CLICKS1 = TP("clicks", 0), TP("clicks", 1)


@pytest.fixture
def consumer() -> Iterator[Any]:
    app = App("resume-after-flow", broker="kafka://127.0.0.1:1")
    consumer = app.consumer
    consumer._active_partitions = set()  # a started consumer's: none active yet
    consumer.stop_flow()
    yield consumer
    # The app and its consumer thread each made an event loop; nothing ran on them.
    consumer._thread.thread_loop.close()
    app.loop.close()


def test_partitions_resumed_in_the_block_wait_for_the_flow(consumer: Any) -> None:
    with consumer.resume_after_flow():
        consumer.resume_partitions({CLICKS0, CLICKS1})
        assert not consumer._active_partitions, "fetched before the seek and the clear"
        consumer.stop_flow()
        consumer.resume_flow()
        assert consumer._active_partitions == {CLICKS0, CLICKS1}
    assert consumer._active_partitions == {CLICKS0, CLICKS1}


def test_a_block_that_ends_without_the_flow_still_resumes_them(consumer: Any) -> None:
    try:
        with consumer.resume_after_flow():
            consumer.resume_partitions({CLICKS0})
            raise RuntimeError("recovery failed")
    except RuntimeError:
        pass
    assert consumer._active_partitions == {CLICKS0}, "as Faust would have left them"


def test_outside_the_block_resume_is_immediate(consumer: Any) -> None:
    consumer.resume_partitions({CLICKS1})
    assert consumer._active_partitions == {CLICKS1}


def test_a_generation_that_is_over_resumes_nothing(consumer: Any) -> None:
    # A rebalance began while the recovery waited on the broker: the newer generation
    # paused everything and resumes its own partitions when its recovery ends.
    with consumer.resume_after_flow():
        consumer.resume_partitions({CLICKS0})
        consumer.app.consumer_generation_id += 1
        consumer.resume_flow()
    assert not consumer._active_partitions


def test_overlapping_blocks_each_resume_their_own(consumer: Any) -> None:
    outer = consumer.resume_after_flow()
    outer.__enter__()
    consumer.resume_partitions({CLICKS0})
    with consumer.resume_after_flow():  # the next generation's recovery, same generation id
        consumer.resume_partitions({CLICKS1})
        consumer.resume_flow()
        assert consumer._active_partitions == {CLICKS1}
    outer.__exit__(None, None, None)
    assert consumer._active_partitions == {CLICKS0, CLICKS1}, "the outer block's, at its end"
