"""Cores that share state through a feed, and a snapshot of what they must hold alike."""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Awaitable, Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from services.contract.events import ClickEvent
from services.kafka.io import DeliveryError
from services.kafka.settings import KafkaSettings
from services.recommender.catalog import Catalog
from services.recommender.embeddings import EmbeddingIndex
from services.recommender.feed import (
    DEFAULT_TOPICS,
    FeedSharedState,
    FeedSource,
    FeedTopics,
    Publisher,
)
from services.recommender.pipeline import Click, RecommenderCore
from services.recommender.scorer import CircuitBreaker, LinearScorer
from services.recommender.segments import SegmentConfig, UserSegmenter
from services.recommender.shared import SharedStateApplier
from services.recommender.state import InMemoryUserStateStore, ItemStats

SEGMENTS = SegmentConfig(n_segments=6)


class ProducerPublisher:
    """A confluent-kafka producer as a feed ``Publisher`` (the worker uses Faust's): a thread
    polls for delivery reports and settles each record's future on its event loop."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.producer = Producer({**kafka.confluent_config(), "enable.idempotence": True})
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closed.is_set():
            self.producer.poll(0.05)

    async def send(self, topic: str, key: bytes, value: bytes) -> Awaitable[Any]:
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()

        def settle(err: KafkaError | None) -> None:
            if delivered.done():
                return
            if err is None:
                delivered.set_result(None)
            else:
                delivered.set_exception(DeliveryError(f"{topic}: {err}"))

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            loop.call_soon_threadsafe(settle, err)

        self.producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
        return delivered

    def close(self) -> None:
        self._closed.set()
        self._poller.join()
        self.producer.flush(10)


def feed_core(
    source: FeedSource, publisher: Publisher, topics: FeedTopics = DEFAULT_TOPICS
) -> RecommenderCore:
    """A worker's core, in memory except for its shared state, which goes through a feed."""
    stats, catalog, embeddings = ItemStats(), Catalog(), EmbeddingIndex()
    segments = UserSegmenter(SEGMENTS)
    applier = SharedStateApplier(stats, catalog, embeddings, segments)
    return RecommenderCore(
        users=InMemoryUserStateStore(),
        stats=stats,
        catalog=catalog,
        scorer=CircuitBreaker(LinearScorer(), LinearScorer()),
        features=None,
        embeddings=embeddings,
        segments=segments,
        shared=FeedSharedState(applier, source, publisher, topics),
    )


def owner(event: ClickEvent, workers: int) -> int:
    """Which worker owns a click's user, as partitions by key would decide."""
    return zlib.crc32(event.user_id.encode()) % workers


def split(events: Sequence[ClickEvent], workers: int) -> list[list[Click]]:
    out: list[list[Click]] = [[] for _ in range(workers)]
    for ev in events:
        w = owner(ev, workers)
        out[w].append(Click(ev, partition=w, received_at=0.0))
    return out


def snapshot(core: RecommenderCore) -> dict[str, Any]:
    """The state every worker must hold alike (read caches aside)."""
    assert isinstance(core.segments, UserSegmenter)
    segments = core.segments.to_state()
    stats = core.stats
    return {
        "popularity": dict(stats.popularity),
        "trending": {item: stats.trending(item) for item in stats.popularity},
        "covis": {item: dict(row) for item, row in stats.covis.items()},
        "centers": segments["centers"],
        "seeded": segments["seeded"],
        "segment_counts": segments["counts"],
        "catalog": {item_id: item.model_dump() for item_id, item in core.catalog.items.items()},
        "embedding_ids": list(core.embeddings.ids),
        "embeddings": core.embeddings.matrix.tobytes(),
    }
