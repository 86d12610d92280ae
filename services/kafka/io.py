"""Producing contract events and reading topics with confluent-kafka (broker-neutral)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from pydantic import BaseModel

from services.contract import codec
from services.kafka.settings import KafkaSettings


class DeliveryError(RuntimeError):
    """The broker did not acknowledge some produced messages."""


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


def event_key(event: BaseModel) -> bytes:
    """The contract's key: user_id for clicks and recommendations, item_id for items."""
    key = getattr(event, "user_id", None) or getattr(event, "item_id", None)
    return str(key).encode() if key is not None else b""


class EventProducer:
    """A producer that counts deliveries and fails loudly if any is lost."""

    def __init__(self, settings: KafkaSettings, **overrides: object) -> None:
        conf = {
            **settings.confluent_config(),
            "enable.idempotence": True,
            "linger.ms": 5,
            **overrides,
        }
        self._producer = Producer(conf)
        self.delivered = 0
        self.errors: list[str] = []

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(f"{msg.topic()}: {err}")
        else:
            self.delivered += 1

    def send(self, topic: str, value: bytes | None, key: bytes | None = None) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                break
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
        self._producer.poll(0)

    def warm_up(self, topic: str, timeout: float = 30.0) -> float:
        """Send one message to ``topic`` (a scratch topic) and wait for it; returns the
        seconds it took.

        An idempotent producer holds everything it is given until the broker has issued
        its producer id: ~0.5 s on tansu. Messages sent on a schedule from a new producer
        are late by that much, which a latency benchmark would count against the system
        it measures (docs/BENCHMARKS.md, session 16).
        """
        started = time.monotonic()
        self.send(topic, b"warm-up")
        self.flush(timeout)
        return time.monotonic() - started

    def send_event(self, topic: str, event: BaseModel) -> None:
        self.send(topic, codec.encode(event), event_key(event))

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self._producer.flush(timeout)
        if remaining or self.errors:
            raise DeliveryError(
                f"{remaining} message(s) undelivered after {timeout}s; errors: {self.errors[:5]}"
            )


def produce_events(
    settings: KafkaSettings,
    topic: str,
    events: Iterable[BaseModel],
    rate: float | None = None,
    progress: bool = False,
    total: int | None = None,
    producer: EventProducer | None = None,
) -> int:
    """Send events at ``rate`` per second (as fast as possible if None); returns the count.

    A new producer is made unless one is given (a benchmark gives one already connected:
    see :meth:`EventProducer.warm_up`)."""
    producer = producer or EventProducer(settings)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="ev", desc=f"→ {topic}")
    start = time.monotonic()
    n = 0
    for event in events:
        if rate:
            # Pace against the schedule, not per message, so sleeps do not accumulate drift.
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        producer.send_event(topic, event)
        n += 1
        if bar is not None:
            bar.update(1)
    producer.flush()
    if bar is not None:
        bar.close()
    return n


def consumer(settings: KafkaSettings, group: str | None = None, **overrides: object) -> Consumer:
    conf = {
        **settings.confluent_config(),
        # A throwaway group per reader unless one is named: readers never share offsets.
        "group.id": group or f"streamrec-reader-{uuid.uuid4().hex[:12]}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": group is not None,
        # tansu answers very short fetch waits with no data at all.
        "fetch.wait.max.ms": 100,
        "session.timeout.ms": 6000,
        **overrides,
    }
    return Consumer(conf)


def records(messages: Iterable[Message]) -> Iterator[Message]:
    """The records among ``consume()``'s messages: partition-EOF markers are skipped,
    any other error is raised."""
    for msg in messages:
        err = msg.error()
        if err is None:
            yield msg
        elif err.code() != KafkaError._PARTITION_EOF:
            raise KafkaException(err)


def partitions_at_end(c: Consumer, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of ``topics`` at its current end offset (what a reader interested
    only in records from now on assigns). Raises ``KafkaException`` for a missing topic."""
    out = []
    for topic in topics:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            raise KafkaException(f"topic {topic} does not exist")
        for p in md.partitions:
            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            out.append(TopicPartition(topic, p, high))
    return out


def end_offsets(
    settings: KafkaSettings,
    listed: Mapping[tuple[str, int], int],
    timeout: float = 10.0,
) -> dict[tuple[str, int], int]:
    """The true end offset of each partition in ``listed`` (its ListOffsets answer).

    tansu answers ListOffsets with its last record batch's first offset + 1: short of the
    end by the batch's size - 1 (a producer that batched 40 records hides 39). A reader
    that stops at that answer misses the tail: Faust's table recovery (it would restore a
    user's older state) and lag (it would read 0 too early). A fetch reports the real high
    watermark, so each partition with records is read from its listed end - 1 to the
    partition EOF. Other brokers answer exactly; the fetch then returns what was listed.
    """
    ends = dict(listed)
    probe = [(tp, end) for tp, end in listed.items() if end > 0]
    if not probe:
        return ends
    c = consumer(settings, None, **{"enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, p, end - 1) for (topic, p), end in probe])
        waiting = {tp for tp, _ in probe}
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None or (err := msg.error()) is None:
                continue
            if err.code() == KafkaError._PARTITION_EOF:
                tp = (msg.topic() or "", msg.partition() or 0)
                ends[tp] = max(ends.get(tp, 0), msg.offset() or 0)
                waiting.discard(tp)
            elif err.fatal():
                raise KafkaException(err)
        if waiting:
            raise KafkaException(
                f"no end offset within {timeout:.0f}s for {sorted(waiting)} (broker "
                f"{settings.bootstrap})"
            )
        return ends
    finally:
        c.close()


def first_offset_from(
    settings: KafkaSettings, topic: str, partition: int, offset: int, timeout: float = 10.0
) -> int | None:
    """The offset of the first record the broker hands a reader that starts at ``offset``
    of ``topic[partition]``: ``offset`` itself if the broker holds it; later if the
    offsets between hold no record a reader is given (expired by retention, compacted
    away, an aborted transaction's, a transaction marker); None if nothing comes within
    ``timeout`` (past the end, or the broker did not answer).

    An offset past the log's start that a reader is not given was skipped by it, not
    lost by the broker: that is what the worker's continuity check asks
    (services/recommender/continuity.py).
    """
    # Out of range (below the log's start): librdkafka restarts from the earliest offset.
    c = consumer(settings, None, **{"auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is None:
                return msg.offset()
            if err.fatal():
                raise KafkaException(err)
        return None
    finally:
        c.close()


def rewind_replaced(
    c: Consumer, next_offsets: MutableMapping[tuple[str, int], int]
) -> list[tuple[str, int]]:
    """Seek to its start each partition whose end fell below the next offset to read;
    returns those partitions (their entry in ``next_offsets`` set to 0).

    The end only falls when the log was replaced: a broker on memory storage (tansu)
    restarted empty, or the topic was deleted and created again. Kafka answers a fetch past
    the end with OFFSET_OUT_OF_RANGE and librdkafka resets the position itself; tansu
    answers it with no records and no error, so a long-running reader would wait, silently,
    until the new log grew past its old position, and miss everything sent meanwhile. The
    end used is the one the last fetch reported (no request; tansu's ListOffsets answer
    lags the real end, see :func:`end_offsets`).
    """
    rewound = []
    for key, next_offset in list(next_offsets.items()):
        high = c.get_watermark_offsets(TopicPartition(*key), cached=True)[1]
        if 0 <= high < next_offset:
            next_offsets[key] = 0
            c.seek(TopicPartition(key[0], key[1], OFFSET_BEGINNING))
            rewound.append(key)
    return rewound


def read_topic(
    settings: KafkaSettings,
    topic: str,
    *,
    from_beginning: bool = True,
    idle_timeout: float | None = 5.0,
    max_messages: int | None = None,
    timeout: float | None = None,
) -> Iterator[Record]:
    """Yield a topic's records from every partition (no consumer group).

    Stops after ``idle_timeout`` seconds without a record, after ``max_messages``,
    or ``timeout`` seconds after the start, whichever comes first.
    """
    c = consumer(settings)
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            raise KafkaException(f"topic {topic} does not exist")
        start = -2 if from_beginning else -1  # OFFSET_BEGINNING / OFFSET_END
        c.assign([TopicPartition(topic, p, start) for p in md.partitions])
        last = started = time.monotonic()
        n = 0
        while max_messages is None or n < max_messages:
            if timeout is not None and time.monotonic() - started > timeout:
                return
            msg = c.poll(0.2)
            if msg is None:
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    return
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(err)
            last = time.monotonic()
            n += 1
            yield Record(
                topic=msg.topic() or topic,
                partition=msg.partition() or 0,
                offset=msg.offset() or 0,
                key=msg.key(),
                value=msg.value(),
                timestamp_ms=msg.timestamp()[1],
            )
    finally:
        c.close()
