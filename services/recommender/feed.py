"""Shared state through the feed topics: publish records, apply them as they come back.

Every worker reads ``item-activity`` and ``item-embeddings`` whole, from the beginning,
with no consumer group (nothing is committed: a restarted worker rebuilds its state by
reading them again). Both topics have one partition, so every reader sees each in one
order; a worker applies its own records only when it reads them back, in that order, like
everyone else's. Replicas that start alike (seeded) and apply one sequence stay equal.

The worker applies what the reader (``feed_reader.py``, a confluent-kafka consumer in a
thread) queued at the start of each click batch and on a short timer. ``InMemoryFeed`` is
the same seam without a broker, for unit tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from services.contract import codec
from services.contract.events import ITEM_ACTIVITY, ITEM_EMBEDDINGS, ItemActivity
from services.recommender.shared import SharedRecord, SharedStateApplier


@dataclass(frozen=True)
class FeedTopics:
    """The feed's topic names (tests use their own on a shared broker)."""

    activity: str = ITEM_ACTIVITY
    embeddings: str = ITEM_EMBEDDINGS

    def of(self, record: SharedRecord) -> tuple[str, bytes]:
        """Topic and key of a record: item-embeddings is compacted by item_id."""
        if isinstance(record, ItemActivity):
            return self.activity, record.user_id.encode()
        return self.embeddings, record.item.item_id.encode()


DEFAULT_TOPICS = FeedTopics()


class Publisher(Protocol):
    """Sends bytes to a topic: the worker's Faust producer in production."""

    async def send(self, topic: str, key: bytes, value: bytes) -> Awaitable[Any]:
        """Queue the record; the returned awaitable completes once the broker has it."""
        ...


class FeedSource(Protocol):
    """Decoded feed records, in feed order, for the asyncio side."""

    @property
    def caught_up(self) -> bool:
        """Everything that was on the feed when reading started has been taken."""
        ...

    def take(self) -> list[SharedRecord]: ...

    def status(self) -> dict[str, Any]: ...


class FeedSharedState:
    """Shared state that a record changes only when it comes back from the feed."""

    def __init__(
        self,
        applier: SharedStateApplier,
        source: FeedSource,
        publisher: Publisher,
        topics: FeedTopics = DEFAULT_TOPICS,
    ) -> None:
        self.applier, self.source, self.publisher, self.topics = applier, source, publisher, topics

    @property
    def caught_up(self) -> bool:
        return self.source.caught_up

    async def publish(self, record: SharedRecord) -> Awaitable[Any]:
        topic, key = self.topics.of(record)
        return await self.publisher.send(topic, key, codec.encode(record))

    def sync(self) -> int:
        records = self.source.take()
        for record in records:
            self.applier.apply(record)
        return len(records)

    async def catch_up(self, timeout: float) -> bool:
        """Apply the feed until caught up (or ``timeout`` seconds); True if caught up."""
        deadline = time.monotonic() + timeout
        while True:
            self.sync()
            if self.caught_up:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)

    def status(self) -> dict[str, Any]:
        return {
            "mode": "feed",
            **self.source.status(),
            "applied": self.applier.applied,
            "duplicates": self.applier.duplicates,
            "rejected": self.applier.rejected,
        }


class InMemoryFeed:
    """One in-memory feed log that several workers publish to and read, for unit tests."""

    def __init__(self, topics: FeedTopics = DEFAULT_TOPICS) -> None:
        self.topics = topics
        self.log: list[tuple[str, bytes, bytes]] = []

    async def send(self, topic: str, key: bytes, value: bytes) -> Awaitable[Any]:
        self.log.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def reader(self) -> InMemoryFeedReader:
        return InMemoryFeedReader(self)


class InMemoryFeedReader:
    """A cursor over an :class:`InMemoryFeed`, from its beginning, through the codec."""

    def __init__(self, feed: InMemoryFeed) -> None:
        self.feed, self.position = feed, 0
        self._start = len(feed.log)

    @property
    def caught_up(self) -> bool:
        return self.position >= self._start

    def take(self) -> list[SharedRecord]:
        out: list[SharedRecord] = []
        for topic, _, value in self.feed.log[self.position :]:
            decode = (
                codec.decode_item_activity
                if topic == self.feed.topics.activity
                else codec.decode_item_embedding
            )
            out.append(decode(value))
        self.position = len(self.feed.log)
        return out

    def status(self) -> dict[str, Any]:
        return {"caught_up": self.caught_up, "lag": len(self.feed.log) - self.position}
