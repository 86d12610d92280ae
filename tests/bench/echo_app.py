"""A bare consume→produce echo on the worker's own Kafka stack: the broker's latency floor.

    python -m tests.bench.echo_app worker -l warning   (STREAMREC_BOOTSTRAP=host:port)

The same Faust transport, fetch wait and micro-batching (``take_events``, 256 messages
or 10 ms) as the recommender worker, and nothing else: each message from ``bench.echo.in``
goes unchanged to ``bench.echo.out`` and is delivered before the batch is acknowledged.
``tests.bench.stack_load`` runs it beside StreamRec in the same run, so their difference
is StreamRec's own work.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from services.kafka.settings import KafkaSettings
from services.recommender.settings import WorkerSettings
from services.recommender.transport import App

ECHO_IN, ECHO_OUT = "bench.echo.in", "bench.echo.out"


def create_app(bootstrap: str) -> App:
    settings = WorkerSettings()
    kafka = KafkaSettings(bootstrap=bootstrap)
    app = App(
        f"streamrec-echo-{os.getpid()}",
        broker=kafka.faust_broker_url(),
        store="memory://",
        datadir=f"/tmp/streamrec-echo-{os.getpid()}",
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="latest",
        web_enabled=False,
        producer_acks=-1,
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    source = app.topic(ECHO_IN, key_serializer="raw", value_serializer="raw")
    sink = app.topic(ECHO_OUT, key_serializer="raw", value_serializer="raw")

    @app.agent(source)
    async def echo(stream: Any) -> AsyncIterator[None]:
        within = settings.batch_ms / 1000.0
        async for events in stream.take_events(settings.batch_max, within=within):
            pending = [await sink.send(key=e.key, value=e.value) for e in events]
            await asyncio.gather(*pending)
            yield None

    return app


def main() -> None:
    app = create_app(os.environ.get("STREAMREC_BOOTSTRAP", "127.0.0.1:9092"))
    sys.argv = [sys.argv[0], *sys.argv[1:]]
    app.main()


if __name__ == "__main__":
    main()
