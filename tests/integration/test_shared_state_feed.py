"""Shared state through the real broker: workers that publish to and read the feed topics
(each its own producer and reader) end up with identical state, and a reader started
afterwards rebuilds it (a restarted worker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from services.data import synthetic
from services.kafka.admin import ensure_topics
from services.kafka.settings import KafkaSettings
from services.recommender.catalog import CatalogUpdater
from services.recommender.encoder import HashingEncoder
from services.recommender.feed import FeedTopics
from services.recommender.feed_reader import FeedReader
from services.recommender.pipeline import RecommenderCore
from tests.support.infra import embedded_kafka, free_port
from tests.support.shared_state import ProducerPublisher, feed_core, snapshot, split

pytestmark = pytest.mark.integration

N_ITEMS, N_CLICKS = 60, 600


async def applied(cores: Sequence[RecommenderCore], n: int, timeout: float = 60.0) -> None:
    """Sync each core until it applied ``n`` records (they arrive asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = []
        for core in cores:
            core.shared.sync()
            counts.append(core.shared.status()["applied"])
        if all(c >= n for c in counts):
            return
        assert time.monotonic() < deadline, f"applied {counts} of {n} records"
        await asyncio.sleep(0.1)


def test_workers_on_the_real_feed_hold_identical_state_and_a_new_reader_rebuilds_it(
    infra, unique
) -> None:  # type: ignore[no-untyped-def]
    kafka = KafkaSettings(bootstrap=infra.kafka_bootstrap)
    topics = FeedTopics(activity=f"item-activity-{unique}", embeddings=f"item-embeddings-{unique}")
    ensure_topics(kafka, 1, [topics.activity, topics.embeddings])
    ds = synthetic.generate(n_users=40, n_items=N_ITEMS, n_clicks=N_CLICKS, seed=11)

    async def scenario() -> None:
        publishers = [ProducerPublisher(kafka) for _ in range(2)]
        readers = [FeedReader(kafka, topics) for _ in range(3)]
        readers[0].start()
        readers[1].start()
        workers = [feed_core(r, p, topics) for r, p in zip(readers, publishers, strict=False)]
        try:
            for core in workers:
                assert await core.shared.catch_up(30), "an empty feed is caught up at once"
            # Each worker consumes part of the catalog and the clicks of its own users.
            await CatalogUpdater(workers[0].shared, HashingEncoder()).apply(ds.items[:30])
            await CatalogUpdater(workers[1].shared, HashingEncoder()).apply(ds.items[30:])
            recommendations = 0
            for start in range(0, N_CLICKS, 50):
                batches = split(ds.clicks[start : start + 50], 2)
                for core, batch in zip(workers, batches, strict=True):
                    result = await core.process(batch)
                    await asyncio.gather(*result.published)  # before "acknowledging"
                    recommendations += len(result.recommendations)
            assert recommendations == N_CLICKS
            await applied(workers, N_ITEMS + N_CLICKS)
            first, second = (snapshot(core) for core in workers)
            assert first == second
            assert sum(first["popularity"].values()) == N_CLICKS
            assert len(first["catalog"]) == N_ITEMS and len(first["embedding_ids"]) == N_ITEMS
            assert first["seeded"] > 1 and first["covis"]
            assert workers[0].shared.status()["lag"] == 0

            # A restart: a new reader from the beginning, caught up means everything.
            readers[2].start()
            restarted = feed_core(readers[2], publishers[0], topics)
            assert await restarted.shared.catch_up(60)
            assert restarted.shared.status()["applied"] == N_ITEMS + N_CLICKS
            assert snapshot(restarted) == first
        finally:
            for reader in readers:
                reader.stop()
            for publisher in publishers:
                publisher.close()

    asyncio.run(scenario())


def test_a_reader_carries_on_after_its_broker_restarts_empty() -> None:
    """tansu on memory storage restarts with empty logs and answers a fetch past their end
    with nothing, not OFFSET_OUT_OF_RANGE: the reader must notice the end fell below its
    position and read the new log from its start, or items published after the restart
    never reach this worker (tests/reliability/test_broker_restart.py)."""
    port = free_port()
    topics = FeedTopics(activity="item-activity", embeddings="item-embeddings")
    ds = synthetic.generate(n_users=5, n_items=20, n_clicks=10, seed=3)
    reader = FeedReader(KafkaSettings(bootstrap=f"127.0.0.1:{port}"), topics)

    async def publish(kafka: KafkaSettings, items: Sequence) -> None:  # type: ignore[type-arg]
        publisher = ProducerPublisher(kafka)
        try:
            await CatalogUpdater(
                feed_core(reader, publisher, topics).shared, HashingEncoder()
            ).apply(items)
        finally:
            publisher.close()

    async def scenario() -> None:
        with embedded_kafka(port) as bootstrap:
            kafka = KafkaSettings(bootstrap=bootstrap)
            ensure_topics(kafka, 1, [topics.activity, topics.embeddings])
            reader.start()
            await publish(kafka, ds.items[:15])
            await until_read(15)
        with embedded_kafka(port) as bootstrap:
            kafka = KafkaSettings(bootstrap=bootstrap)
            ensure_topics(kafka, 1, [topics.activity, topics.embeddings])
            await publish(kafka, ds.items[15:])
            await until_read(20)
        assert reader.status()["resets"] >= 1

    async def until_read(n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while reader.read < n:
            assert reader.error is None, reader.error
            assert time.monotonic() < deadline, f"the reader read {reader.read} of {n} records"
            await asyncio.sleep(0.1)

    try:
        asyncio.run(scenario())
    finally:
        reader.stop()
