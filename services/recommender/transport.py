"""Faust's aiokafka transport: a configurable consumer fetch wait, and changelog ends
read to the true end.

Faust passes ``fetch_max_wait_ms=1500`` to aiokafka unconditionally. On a quiet topic a
fetch then waits up to 1.5 s for data; brokers that do not wake a waiting fetch when data
arrives (tansu, measured) make that the click-to-recommendation latency. aiokafka reads
the value when the consumer starts, so we set it on the consumer Faust creates, before
Faust starts it. tansu answers waits of 10 ms or less with no data at all; 50–500 ms work.

Table recovery replays each changelog partition up to the end offset the broker lists
(ListOffsets). tansu lists its last record batch's first offset + 1, short of the end by
the batch's size - 1, so a restarted worker stopped replaying early and recovered users'
older state: clicks already answered were answered again and counted twice
(tests/reliability/test_worker_faults.py). For changelog partitions the listed end is
checked by fetching to the partition's end (services/kafka/io.py:end_offsets); on other
brokers that returns what was listed.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import faust
from faust import streams as faust_streams
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from services.kafka.io import end_offsets
from services.kafka.settings import KafkaSettings
from services.recommender.ackgate import AckGate

log = logging.getLogger(__name__)

# Faust's Cython stream iterator acks a message it passes over (a message a stream drops,
# as it does every message it drains after its agent stopped) by writing the consumer's
# ack bookkeeping itself, not through ``Consumer.ack``: the ack gate below never sees it.
# Session 15: a worker that stopped on skipped messages (continuity.py) had the messages
# after the skip acked that way on its way out, and Faust, which counted the skipped
# offsets as a gap, committed past them all (tests/integration/test_continuity_faust.py).
# The pure-Python iterator acks through ``Consumer.ack``; Faust reads this at each
# iteration's start, so clearing it here covers every stream of the process.
faust_streams._CStreamIterator = None

DEFAULT_FETCH_MAX_WAIT_MS = 100
CHANGELOG_SUFFIX = "-changelog"


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait = getattr(self.app, "fetch_max_wait_ms", DEFAULT_FETCH_MAX_WAIT_MS)
        consumer._fetch_max_wait_ms = int(wait)  # aiokafka has no public setter
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        listed = dict(await super()._highwaters(partitions))
        settings: KafkaSettings | None = getattr(self.app, "kafka_settings", None)
        changelogs = {
            (tp.topic, tp.partition): end
            for tp, end in listed.items()
            if end is not None and tp.topic.endswith(CHANGELOG_SUFFIX)
        }
        if settings is None or not changelogs:
            return listed
        try:
            # A blocking confluent-kafka read, off this consumer thread's event loop.
            ends = await asyncio.get_running_loop().run_in_executor(
                None, end_offsets, settings, changelogs
            )
        except Exception as exc:  # recovery goes on with the listed ends, as before
            log.warning("changelog end offsets not refined (%s); using the listed ones", exc)
            return listed
        refined = {tp: ends.get((tp.topic, tp.partition), end) for tp, end in listed.items()}
        for tp, end in refined.items():
            if end != listed[tp]:
                log.info(
                    "changelog %s[%d]: end %d, listed %d", tp.topic, tp.partition, end, listed[tp]
                )
        return refined


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    # The rebalance generation whose recovery is finishing, and the partitions it resumed,
    # held back until the flow resumes.
    _held: tuple[int, set[TP]] | None = None

    @contextmanager
    def resume_after_flow(self) -> Iterator[None]:
        """Hold back partitions resumed inside this block until :meth:`resume_flow`.

        When a recovery finishes, Faust resumes the stream partitions, seeks them to the
        committed offsets (a broker round trip), then resumes flow control, which clears
        every stream's buffer. Messages fetched between the first and the last step were
        dropped unseen while Faust's read offset moved past them: the agent's first
        message came from hundreds of offsets past the committed one (session 15, test 1;
        continuity.py stops the worker then). Resumed only with the flow, the partitions
        are fetched from the committed offsets into empty buffers.

        A rebalance can begin while one of these blocks waits on the broker, and its own
        recovery can open another: each block holds its own partitions, and those of a
        generation that is over are never resumed (the newer rebalance paused them and
        resumes its own, as it would have after Faust's order).
        """
        held: tuple[int, set[TP]] = (self.app.consumer_generation_id, set())
        self._held = held
        try:
            yield
        finally:
            if self._held is held:
                self._held = None
            # Ended without resuming the flow (an error): resumed as Faust would have.
            self._resume_held(held)

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        if self._held is not None:
            self._held[1].update(tps)
            return
        super().resume_partitions(tps)

    def resume_flow(self) -> None:
        super().resume_flow()
        if self._held is not None:
            self._resume_held(self._held)

    def _resume_held(self, held: tuple[int, set[TP]]) -> None:
        generation, tps = held
        if tps and generation == self.app.consumer_generation_id:
            super().resume_partitions(set(tps))
        tps.clear()

    def committed_offset(self, tp: Any) -> int | None:
        """The group's committed offset of ``tp`` as this consumer knows it (read from the
        broker on assignment, then its own commits); None if there is none."""
        offset = self._committed_offset.get(tp)
        return None if offset is None else int(offset)

    def ack(self, message: Any) -> bool:
        # Only what an agent finished is committed (ackgate.py).
        gate: AckGate | None = getattr(self.app, "ack_gate", None)
        if gate is None or gate.allows(message):
            return bool(super().ack(message))
        if not message.acked:
            # Let go, so a shutdown does not wait for it; the offset is never recorded.
            message.acked = True
            gate.refused += 1
            log.debug(
                "ack refused for %s[%d]@%d: not handled",
                message.topic,
                message.partition,
                message.offset,
            )
        return False


class Transport(driver.Transport):
    Consumer = _Consumer


class App(faust.App):
    """A Faust app whose worker consumer waits at most ``fetch_max_wait_ms`` per fetch."""

    fetch_max_wait_ms: int = DEFAULT_FETCH_MAX_WAIT_MS
    # How to reach the broker with confluent-kafka (changelog ends); None skips that check.
    kafka_settings: KafkaSettings | None = None
    # Which acks may be committed (ackgate.py); None lets every ack through, as Faust does.
    ack_gate: AckGate | None = None

    # A stop that has not finished after this many seconds ends the process (None: wait).
    stop_timeout_s: float | None = None

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)

    async def on_stop(self) -> None:
        # Faust's stop waits for its streams and commits before the process exits, and
        # the stack's supervisor restarts a worker only once it has exited. Session 15
        # caught a worker stopping on skipped messages that hung there for minutes, its
        # partitions read by nobody. Nothing is lost by cutting the stop short: offsets
        # are committed only for finished batches (ackgate.py), so whatever the stop did
        # not get to is read again by the restarted worker.
        if self.stop_timeout_s is not None:
            deadline = threading.Timer(self.stop_timeout_s, _stop_overdue, (self.stop_timeout_s,))
            deadline.daemon = True
            deadline.start()
        await super().on_stop()


# The exit status of a worker whose stop overran: EX_SOFTWARE, so a supervisor restarts it.
STOP_OVERDUE_EXIT = 70


def _stop_overdue(timeout_s: float) -> None:
    log.error(
        "the worker's stop has not finished after %.0fs; exiting now (every thread's stack "
        "follows on stderr). Offsets of unfinished batches were not committed: the restarted "
        "worker reads them again.",
        timeout_s,
    )
    faulthandler.dump_traceback(all_threads=True)
    sys.stderr.flush()
    os._exit(STOP_OVERDUE_EXIT)
