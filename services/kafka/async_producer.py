"""A confluent-kafka producer for asyncio code: ``await send(...)`` gives a delivery future.

The worker sends two to three messages per click (its recommendation, the shared
item-activity record, dead letters). Faust's own send path costs ~0.3 ms of the event
loop per message on this machine (measured with py-spy: Faust's send, aiokafka's sender
and its socket writes); librdkafka batches and writes from its own C threads, so the loop
pays only for ``produce()``. A daemon thread polls for delivery reports and settles each
message's future on the loop, so a caller can still wait until the broker has every
message of a batch before acknowledging the batch's input. The reports of one poll are
settled together, with one wake-up of the loop: a wake-up per message (a write to the
loop's self-pipe each) was half the poll thread's samples flat out (py-spy), and woke
the loop's thread as often.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from contextlib import suppress

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from services.kafka.io import DeliveryError
from services.kafka.settings import KafkaSettings

# How long a full librdkafka queue makes ``send`` wait before trying again (backpressure).
QUEUE_FULL_WAIT_S = 0.005


class AsyncProducer:
    """``await producer.send(topic, key, value)`` queues a message and returns a future
    that completes once the broker acknowledged it (``acks=all``), or fails with
    :class:`DeliveryError`."""

    def __init__(self, settings: KafkaSettings, **overrides: object) -> None:
        conf = {
            **settings.confluent_config(),
            "acks": "all",
            # Long enough to batch a micro-batch's answers, short beside the broker's ~ms.
            "linger.ms": 2,
            **overrides,
        }
        self._producer = Producer(conf)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Delivery reports of the current poll (or flush), settled in one go after it.
        self._reports: list[_Report] = []
        self._reports_lock = threading.Lock()

    async def send(self, topic: str, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        self._start()
        future: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:  # the poll thread
            with self._reports_lock:
                self._reports.append((loop, future, err, topic))

        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                return future
            except BufferError:
                # librdkafka's queue is full: wait for deliveries to drain it.
                await asyncio.sleep(QUEUE_FULL_WAIT_S)
            except KafkaException as exc:  # refused before sending (e.g. too large)
                raise DeliveryError(f"{topic}: {exc.args[0]}") from exc

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still outstanding."""
        remaining = int(self._producer.flush(timeout))
        self._hand_over()
        return remaining

    def close(self, timeout: float = 30.0) -> int:
        remaining = self.flush(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return remaining

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._poll, name="async-producer-poll", daemon=True
                )
                self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)
            self._hand_over()

    def _hand_over(self) -> None:
        """Settle the reports gathered so far on their loops: one wake-up per loop."""
        with self._reports_lock:
            reports, self._reports = self._reports, []
        if not reports:
            return
        by_loop: defaultdict[asyncio.AbstractEventLoop, list[_Report]] = defaultdict(list)
        for report in reports:
            by_loop[report[0]].append(report)
        for loop, batch in by_loop.items():
            with suppress(RuntimeError):  # the loop is closed: nobody waits for these now
                loop.call_soon_threadsafe(_settle_all, batch)


_Report = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]", KafkaError | None, str]


def _settle_all(reports: list[_Report]) -> None:
    for _, future, err, topic in reports:
        if future.done():  # cancelled by its waiter
            continue
        if err is None:
            future.set_result(None)
        else:
            future.set_exception(DeliveryError(f"{topic}: {err}"))
