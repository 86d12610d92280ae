"""Kafka plumbing against a real broker (the `infra` fixture: testcontainers or tansu)."""

from __future__ import annotations

import pytest

from services.contract.events import ALL_TOPICS, ClickEvent
from services.kafka.admin import TopicSetupError, ensure_topics
from services.kafka.io import EventProducer, produce_events, read_topic
from services.kafka.settings import KafkaSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka(infra) -> KafkaSettings:  # type: ignore[no-untyped-def]
    return KafkaSettings(bootstrap=infra.kafka_bootstrap)


def test_ensure_topics_creates_the_contract_topics_and_is_idempotent(kafka, unique) -> None:  # type: ignore[no-untyped-def]
    topics = [f"{t}-{unique}" for t in ALL_TOPICS]
    assert ensure_topics(kafka, 3, topics) == {t: 3 for t in topics}
    assert ensure_topics(kafka, 3, topics) == {t: 3 for t in topics}


def test_ensure_topics_refuses_a_partition_mismatch(kafka, unique) -> None:  # type: ignore[no-untyped-def]
    topic = f"clicks-{unique}"
    ensure_topics(kafka, 2, [topic])
    with pytest.raises(TopicSetupError, match="other partition counts"):
        ensure_topics(kafka, 4, [topic])


def test_events_round_trip_keyed_by_user(kafka, unique) -> None:  # type: ignore[no-untyped-def]
    topic = f"clicks-{unique}"
    ensure_topics(kafka, 4, [topic])
    clicks = [
        ClickEvent(
            event_id=f"{unique}-{i}", user_id=f"u{i % 3}", item_id=f"i{i}", ts=1_750_000_000_000 + i
        )
        for i in range(50)
    ]
    assert produce_events(kafka, topic, clicks) == 50
    records = list(read_topic(kafka, topic, idle_timeout=3))
    assert len(records) == 50
    partitions_by_user: dict[bytes, set[int]] = {}
    for r in records:
        assert r.key is not None
        partitions_by_user.setdefault(r.key, set()).add(r.partition)
    # One user's clicks share a partition: per-user state depends on it.
    assert all(len(p) == 1 for p in partitions_by_user.values())


def test_a_warmed_up_producer_has_delivered_its_one_message_and_sends_on(kafka, unique) -> None:  # type: ignore[no-untyped-def]
    scratch, topic = f"warm-{unique}", f"clicks-{unique}"
    ensure_topics(kafka, 1, [scratch, topic])
    producer = EventProducer(kafka)
    assert producer.warm_up(scratch) > 0
    assert producer.delivered == 1
    assert [r.value for r in read_topic(kafka, scratch, idle_timeout=3)] == [b"warm-up"]
    clicks = [
        ClickEvent(event_id=f"{unique}-{i}", user_id="u", item_id=f"i{i}", ts=1_750_000_000_000)
        for i in range(5)
    ]
    # The producer given is the one that sends: no second producer id to wait for.
    assert produce_events(kafka, topic, clicks, producer=producer) == 5
    assert producer.delivered == 6
    assert len(list(read_topic(kafka, topic, idle_timeout=3))) == 5


def test_producer_reports_undeliverable_messages(unique) -> None:  # type: ignore[no-untyped-def]
    from services.kafka.io import DeliveryError

    dead = KafkaSettings(bootstrap="127.0.0.1:1")
    producer = EventProducer(dead, **{"message.timeout.ms": 1000})
    producer.send(f"t-{unique}", b"x")
    with pytest.raises(DeliveryError):
        producer.flush(timeout=5)


def test_end_offsets_are_each_partitions_true_end_however_it_was_batched(kafka, unique) -> None:  # type: ignore[no-untyped-def]
    """40 and 7 records sent in one batch each: ListOffsets may list less (tansu lists the
    last batch's first offset + 1); ``end_offsets`` reads to the real end, which a table
    recovery must reach (services/recommender/transport.py)."""
    from confluent_kafka import Producer, TopicPartition

    from services.kafka.io import consumer, end_offsets

    topic = f"changelog-{unique}"
    ensure_topics(kafka, 2, [topic])
    sizes = {0: 40, 1: 7}
    producer = Producer({**kafka.confluent_config(), "linger.ms": 200})
    for p, n in sizes.items():
        for i in range(n):
            producer.produce(topic, f"v{i}".encode(), b"k", partition=p)
    assert producer.flush(10) == 0
    c = consumer(kafka, None)
    try:
        listed = {
            (topic, p): c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in sizes
        }
    finally:
        c.close()
    assert end_offsets(kafka, listed) == {(topic, p): n for p, n in sizes.items()}
    assert end_offsets(kafka, {(topic, 0): 0}) == {(topic, 0): 0}, "an empty listing stays"


def test_the_workers_lag_gauge_reads_true_ends_not_the_listed_ones(kafka, unique) -> None:  # type: ignore[no-untyped-def]
    """The worker's lag gauge asks its consumer for ends (ListOffsets); tansu lists 1 for
    40 records sent in one batch. The gauge refines them, so lag counts all 40."""
    import asyncio
    from types import SimpleNamespace

    from confluent_kafka import Producer, TopicPartition

    from services.kafka.io import consumer
    from services.recommender.metrics import FaustOffsets
    from services.recommender.metrics import TopicPartition as TP

    topic = f"lagged-{unique}"
    ensure_topics(kafka, 1, [topic])
    producer = Producer({**kafka.confluent_config(), "linger.ms": 200})
    for i in range(40):
        producer.produce(topic, f"v{i}".encode(), b"k", partition=0)
    assert producer.flush(10) == 0
    c = consumer(kafka, None)
    try:
        listed = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()

    class ListedOnly:
        """The consumer as the worker's gauge sees it: the broker's listed end."""

        async def highwaters(self, *partitions: TP) -> dict[TP, int]:
            return {tp: listed for tp in partitions}

    tp = TP(topic, 0)
    app = SimpleNamespace(consumer=ListedOnly(), kafka_settings=kafka)
    assert asyncio.run(FaustOffsets(app).highwaters(tp)) == {tp: 40}
    # Without settings (a test app) the listed end is all there is.
    bare = SimpleNamespace(consumer=ListedOnly())
    assert asyncio.run(FaustOffsets(bare).highwaters(tp)) == {tp: listed}
