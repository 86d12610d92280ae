"""Consumer lag and topic sizes, read from the broker the way any Kafka tool reads them.

Lag is the partition's end offset minus the group's committed offset. The workers commit
only after a batch's recommendations (or dead letters) are delivered, so lag counts clicks
that are not yet answered *durably*; a partition the group never committed counts from
the start of the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, TopicPartition

from services.kafka.io import consumer
from services.kafka.settings import KafkaSettings


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group has committed nothing here yet
    end: int
    start: int

    @property
    def lag(self) -> int:
        return self.end - (self.committed if self.committed is not None else self.start)


def _partitions(c: Consumer, topic: str, timeout: float) -> list[int]:
    md = c.list_topics(topic, timeout=timeout).topics.get(topic)
    if md is None or md.error is not None:
        raise KafkaException(f"topic {topic} does not exist")
    return sorted(md.partitions)


def consumer_lag(
    settings: KafkaSettings, group: str, topics: Iterable[str], timeout: float = 5.0
) -> list[PartitionLag]:
    """Lag of consumer group ``group`` on every partition of ``topics``.

    Reads committed offsets without joining the group (``committed()`` is an
    OffsetFetch), so asking never triggers a rebalance of the workers.
    """
    c = consumer(settings, group=group, **{"enable.auto.commit": False})
    try:
        tps = [TopicPartition(t, p) for t in topics for p in _partitions(c, t, timeout)]
        committed = {(tp.topic, tp.partition): tp.offset for tp in c.committed(tps, timeout)}
        out = []
        for tp in tps:
            low, high = c.get_watermark_offsets(tp, timeout=timeout)
            offset = committed.get((tp.topic, tp.partition), OFFSET_INVALID)
            out.append(
                PartitionLag(tp.topic, tp.partition, offset if offset >= 0 else None, high, low)
            )
        return out
    finally:
        c.close()


def topic_sizes(
    settings: KafkaSettings, topics: Iterable[str], timeout: float = 5.0
) -> dict[str, int]:
    """Records held by each topic (end minus start offsets, summed over partitions);
    a topic that does not exist is left out."""
    c = consumer(settings)
    try:
        sizes: dict[str, int] = {}
        for topic in topics:
            try:
                parts = _partitions(c, topic, timeout)
            except KafkaException:
                continue
            total = 0
            for p in parts:
                low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                total += high - low
            sizes[topic] = total
        return sizes
    finally:
        c.close()
