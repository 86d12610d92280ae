"""A Faust worker that really skips messages, for the continuity test.

``python -m tests.support.skip_worker``, configured by environment (SKIP_*). It reads a
two-partition topic in ``take_events`` batches the way the recommender's agents do, guarded
by the same :class:`OffsetContinuity` and :class:`AckGate`, and appends each handled
batch's ``partition offset`` lines to SKIP_HANDLED before the batch is acknowledged. After its
first batch it seeks partition 0 forward to SKIP_JUMP_TO: the consumer then hands over
offsets past the next expected one, as the restarted worker's consumer did in test 1.
The worker must stop on that batch and commit nothing it did not handle.

With SKIP_AT_START=1 the jump comes before anything is read instead: once Faust has
sought the partitions to the group's committed offsets, partition 0's fetch position is
moved to SKIP_JUMP_TO beneath Faust (as session 15's restarted worker found its first
messages past the committed offset). Faust records the jump as a gap it counts as done;
only the continuity check's start offset stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from faust.types import TP
from mode import CrashingSupervisor

from services.kafka.io import first_offset_from
from services.kafka.settings import KafkaSettings
from services.recommender.ackgate import AckGate
from services.recommender.continuity import OffsetContinuity
from services.recommender.transport import App, Transport, _Consumer

BATCH = 20


class _JumpingConsumer(_Consumer):
    """Once Faust has sought to the committed offsets, moves partition 0's fetch position
    to SKIP_JUMP_TO in aiokafka only: Faust's own read offset stays the committed one."""

    async def perform_seek(self) -> None:
        await super().perform_seek()
        tp = TP(os.environ["SKIP_TOPIC"], 0)
        if tp in self.assignment():
            self._thread.seek(tp, int(os.environ["SKIP_JUMP_TO"]))


class _JumpingTransport(Transport):
    Consumer = _JumpingConsumer


class JumpingApp(App):
    def _new_transport(self) -> Any:
        return _JumpingTransport(self.conf.broker_consumer, self)


def create_app() -> Any:
    kafka = KafkaSettings(bootstrap=os.environ["SKIP_BOOTSTRAP"])
    topic_name = os.environ["SKIP_TOPIC"]
    handled = Path(os.environ["SKIP_HANDLED"])
    jump_to = int(os.environ["SKIP_JUMP_TO"])
    at_start = os.environ.get("SKIP_AT_START") == "1"
    app = (JumpingApp if at_start else App)(
        f"skip-{topic_name}",
        broker=kafka.faust_broker_url(),
        store="memory://",
        datadir=os.environ["SKIP_DATADIR"],
        topic_partitions=2,
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
        web_port=int(os.environ["SKIP_WEB_PORT"]),
        web_in_thread=False,
        # Small fetches and polls and a short stream buffer: the seek below lands before
        # the consumer has fetched up to its target, so what follows it is a real jump.
        consumer_max_fetch_size=2048,
        stream_buffer_maxsize=8,
        broker_max_poll_records=10,
    )
    app.kafka_settings = kafka
    # As the recommender's worker: only finished batches are committed (ackgate.py).
    gate = app.ack_gate = AckGate([topic_name])
    topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")
    continuity = OffsetContinuity(start=lambda tp: app.consumer.committed_offset(tp))

    async def first_held(topic: str, partition: int, offset: int) -> int | None:
        return await asyncio.get_running_loop().run_in_executor(
            None, first_offset_from, kafka, topic, partition, offset
        )

    @app.agent(topic, supervisor_strategy=CrashingSupervisor)
    async def handle(stream: Any) -> Any:
        reached = -1  # partition 0's last offset handled
        async for events in stream.take_events(BATCH, within=0.2):
            await continuity.verify_batch(events, first_held)
            with handled.open("a") as out:
                out.writelines(f"{e.message.partition} {e.message.offset}\n" for e in events)
            reached = max(
                [reached, *(e.message.offset for e in events if e.message.partition == 0)]
            )
            gate.handled(events)
            if not at_start and 0 <= reached < jump_to // 2:
                # Once partition 0 has been read from (a jump before its first message
                # would be a new start), and again until it lands: a seek only moves what
                # is fetched next, and the consumer may hold messages up to some offset.
                await app.consumer.seek(TP(topic_name, 0), jump_to)
            yield None

    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    faust_app = create_app()
    sys.argv = [sys.argv[0], "worker", "--loglevel", "info"]
    faust_app.main()
