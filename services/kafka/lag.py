"""Consumer lag and topic sizes, read from the broker the way any Kafka tool reads them.

Lag is the partition's end offset minus the group's committed offset. End offsets are
read to the real end (:func:`services.kafka.io.end_offsets`): tansu's ListOffsets answer
lags it by the last batch's size - 1, which made an idle stack's lag negative and a
topic's size short. The workers commit
only after a batch's recommendations (or dead letters) are delivered, so lag counts clicks
that are not yet answered *durably*; a partition the group never committed counts from
the start of the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, TopicPartition

from services.kafka.io import consumer, end_offsets
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
        marks = {
            (tp.topic, tp.partition): c.get_watermark_offsets(tp, timeout=timeout) for tp in tps
        }
    finally:
        c.close()
    ends = end_offsets(settings, {tp: high for tp, (_, high) in marks.items()}, timeout)
    out = []
    for (topic, partition), (low, _) in marks.items():
        offset = committed.get((topic, partition), OFFSET_INVALID)
        out.append(
            PartitionLag(
                topic, partition, offset if offset >= 0 else None, ends[(topic, partition)], low
            )
        )
    return out


def topic_sizes(
    settings: KafkaSettings, topics: Iterable[str], timeout: float = 5.0
) -> dict[str, int]:
    """Records held by each topic (end minus start offsets, summed over partitions);
    a topic that does not exist is left out."""
    c = consumer(settings)
    try:
        marks: dict[tuple[str, int], tuple[int, int]] = {}
        for topic in topics:
            try:
                parts = _partitions(c, topic, timeout)
            except KafkaException:
                continue
            for p in parts:
                marks[(topic, p)] = c.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=timeout
                )
    finally:
        c.close()
    ends = end_offsets(settings, {tp: high for tp, (_, high) in marks.items()}, timeout)
    sizes: dict[str, int] = {}
    for (topic, p), (low, _) in marks.items():
        sizes[topic] = sizes.get(topic, 0) + ends[(topic, p)] - low
    return sizes
