"""services/kafka/async_producer.py against the real broker of the `infra` fixture."""

from __future__ import annotations

import asyncio

import pytest

from services.kafka.admin import ensure_topics
from services.kafka.async_producer import AsyncProducer
from services.kafka.io import DeliveryError, read_topic
from services.kafka.settings import KafkaSettings

pytestmark = pytest.mark.integration


def test_every_future_completes_once_the_broker_has_the_message(infra, unique) -> None:  # type: ignore[no-untyped-def]
    kafka = KafkaSettings(bootstrap=infra.kafka_bootstrap)
    topic = f"async-producer-{unique}"
    ensure_topics(kafka, 2, topics=[topic])
    producer = AsyncProducer(kafka)

    async def send_all() -> None:
        futures = [
            await producer.send(topic, f"k{i}".encode(), f"v{i}".encode()) for i in range(500)
        ]
        await asyncio.wait_for(asyncio.gather(*futures), timeout=30)
        assert all(f.done() and f.exception() is None for f in futures)

    asyncio.run(send_all())
    got = {r.value for r in read_topic(kafka, topic, idle_timeout=3)}
    assert got == {f"v{i}".encode() for i in range(500)}
    assert producer.close() == 0


def test_a_message_the_client_refuses_fails_at_once_with_the_topic(infra, unique) -> None:  # type: ignore[no-untyped-def]
    kafka = KafkaSettings(bootstrap=infra.kafka_bootstrap)
    producer = AsyncProducer(kafka, **{"message.max.bytes": 2000})

    async def send_big() -> None:
        await producer.send(f"async-producer-{unique}", None, b"x" * 5000)

    with pytest.raises(DeliveryError, match=f"async-producer-{unique}"):
        asyncio.run(send_big())
    producer.close()


def test_a_poll_s_reports_wake_the_loop_once_not_once_per_message(infra, unique) -> None:  # type: ignore[no-untyped-def]
    kafka = KafkaSettings(bootstrap=infra.kafka_bootstrap)
    topic = f"async-producer-{unique}"
    ensure_topics(kafka, 1, topics=[topic])
    producer = AsyncProducer(kafka)
    wakeups = 0

    async def send_all() -> None:
        nonlocal wakeups
        loop = asyncio.get_running_loop()
        call_soon_threadsafe = loop.call_soon_threadsafe

        def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal wakeups
            wakeups += 1
            return call_soon_threadsafe(*args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        futures = [await producer.send(topic, None, b"v%d" % i) for i in range(1000)]
        await asyncio.wait_for(asyncio.gather(*futures), timeout=30)

    asyncio.run(send_all())
    producer.close()
    # librdkafka delivers a linger's worth of messages per request: their reports arrive
    # in a handful of polls.
    assert 1 <= wakeups < 100


def test_a_delivery_that_fails_fails_its_future_with_the_topic() -> None:
    # Nothing listens there: librdkafka gives up on the message after its timeout.
    kafka = KafkaSettings(bootstrap="127.0.0.1:9")
    producer = AsyncProducer(kafka, **{"message.timeout.ms": 300})

    async def send() -> None:
        future = await producer.send("nowhere", None, b"v")
        await asyncio.wait_for(future, timeout=20)

    with pytest.raises(DeliveryError, match="nowhere"):
        asyncio.run(send())
    producer.close(timeout=1)
