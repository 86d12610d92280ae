"""The feed reader: ``item-activity`` and ``item-embeddings``, whole, in a background thread.

A confluent-kafka consumer with no consumer group offsets: it assigns every partition from
the beginning and never commits, so each start rebuilds the shared state from the feed. It
decodes records and hands them to the asyncio side through a bounded queue (a full queue
pauses reading, so a long feed is not read into memory faster than it is applied).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from services.contract import codec
from services.kafka.io import consumer, rewind_replaced
from services.kafka.settings import KafkaSettings
from services.recommender.feed import DEFAULT_TOPICS, FeedTopics
from services.recommender.shared import SharedRecord

log = logging.getLogger(__name__)

# Records waiting to be applied at most.
QUEUE_SIZE = 10_000


class FeedError(RuntimeError):
    """The feed reader stopped; the worker's shared state would silently go stale."""


class _CaughtUp:
    """Queued after the last record that was on the feed when reading started."""


_CAUGHT_UP = _CaughtUp()


class FeedReader:
    """Reads the feed topics from the beginning in a background thread."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: FeedTopics = DEFAULT_TOPICS,
        queue_size: int = QUEUE_SIZE,
        poll_s: float = 0.1,
    ) -> None:
        self.kafka, self.poll_s = kafka, poll_s
        self._decoders: dict[str, Callable[[bytes | None], SharedRecord]] = {
            topics.activity: codec.decode_item_activity,
            topics.embeddings: codec.decode_item_embedding,
        }
        self._queue: queue.Queue[SharedRecord | _CaughtUp] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._caught_up = False  # set by ``take``: the sentinel is behind every older record
        self.error: BaseException | None = None
        # Written by the reader thread only; read (whole values) by ``status``.
        self.read = 0
        self.malformed = 0
        self.resets = 0  # partitions read again from the start after their log was replaced
        self._refined: set[tuple[str, int]] = set()  # partitions whose end was refined
        self._next: dict[tuple[str, int], int] = {}  # partition -> next offset to read
        self._high: dict[tuple[str, int], int] = {}  # partition -> high watermark last seen

    # -- asyncio side --------------------------------------------------------------------

    @property
    def caught_up(self) -> bool:
        return self._caught_up

    def take(self) -> list[SharedRecord]:
        """Every record queued so far (never blocks); raises :class:`FeedError` if the
        reader died."""
        if self.error is not None:
            raise FeedError(f"the feed reader stopped: {self.error!r}") from self.error
        out: list[SharedRecord] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return out
            if isinstance(item, _CaughtUp):
                self._caught_up = True
            else:
                out.append(item)

    @property
    def lag(self) -> int:
        """Records on the feed not yet applied: unread ones plus queued ones."""
        unread = sum(max(0, h - self._next.get(tp, 0)) for tp, h in list(self._high.items()))
        return unread + self._queue.qsize()

    def status(self) -> dict[str, Any]:
        return {
            "caught_up": self.caught_up,
            "lag": self.lag,
            "read": self.read,
            "malformed": self.malformed,
            "resets": self.resets,
            "error": None if self.error is None else repr(self.error),
        }

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="feed-reader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- reader thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._consume()
        except BaseException as exc:
            log.exception("feed reader failed")
            self.error = exc

    def _put(self, item: SharedRecord | _CaughtUp) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _consume(self) -> None:
        # A throwaway group id that never commits: every start reads the feed from offset 0.
        c = consumer(self.kafka, None, **{"enable.partition.eof": True})
        try:
            partitions = self._partitions(c)
            # Caught up once every partition is read to the end it had at start. tansu
            # answers ListOffsets with the last batch's first offset + 1, so the fetched
            # high watermark (below) refines it; reaching the end (EOF) always counts.
            pending: dict[tuple[str, int], int] = {}
            for tp in partitions:
                low, high = c.get_watermark_offsets(tp, timeout=10)
                key = (tp.topic, tp.partition)
                self._high[key] = high
                if high > low:
                    pending[key] = high
            c.assign(
                [TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in partitions]
            )
            if not pending:
                self._put(_CAUGHT_UP)
            refreshed = 0.0
            while not self._stop.is_set():
                now = time.monotonic()
                if now - refreshed > 0.5:
                    refreshed = now
                    self._refresh_ends(c)
                msg = c.poll(self.poll_s)
                if msg is None:
                    continue
                key = (msg.topic() or "", msg.partition() or 0)
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        if err.fatal():
                            raise KafkaException(err)
                        log.warning("feed: %s", err)
                        continue
                    offset = msg.offset() or 0
                    self._next[key] = self._high[key] = offset
                    if pending.pop(key, None) is not None and not pending:
                        self._put(_CAUGHT_UP)
                    continue
                offset = msg.offset() or 0
                self._next[key] = offset + 1
                self.read += 1
                if key in pending and key not in self._refined:
                    self._refined.add(key)
                    fetched = c.get_watermark_offsets(TopicPartition(*key), cached=True)[1]
                    pending[key] = max(pending[key], fetched)
                try:
                    record = self._decoders[key[0]](msg.value())
                except codec.EventDecodeError as exc:
                    self.malformed += 1
                    log.warning("feed: %s[%d]@%d skipped: %s", key[0], key[1], offset, exc)
                else:
                    self._put(record)
                if key in pending and offset + 1 >= pending[key]:
                    del pending[key]
                    if not pending:
                        self._put(_CAUGHT_UP)
        finally:
            c.close()

    def _refresh_ends(self, c: Consumer) -> None:
        """Each read partition's end, from the last fetch (no request); a partition whose
        log was replaced (tansu restarted on memory storage) is read again from its start:
        catalog entries and item activity sent after a broker restart reach this worker
        (services/kafka/io.py:rewind_replaced)."""
        for key in self._next:
            high = c.get_watermark_offsets(TopicPartition(*key), cached=True)[1]
            if high >= 0:
                self._high[key] = high
        for topic, partition in rewind_replaced(c, self._next):
            log.warning(
                "feed: %s[%d] was replaced (a broker restarted on memory storage?); "
                "reading it again from its start",
                topic,
                partition,
            )
            self.resets += 1

    def _partitions(self, c: Consumer) -> list[TopicPartition]:
        """The feed topics' partitions, waiting for the topics to be created."""
        warned = False
        while not self._stop.is_set():
            topics = c.list_topics(timeout=10).topics
            missing = [t for t in self._decoders if t not in topics]
            if not missing:
                out = []
                for t in self._decoders:
                    parts = sorted(topics[t].partitions)
                    if len(parts) != 1:
                        # Several partitions have no order between them: replicas may
                        # interleave them differently and drift apart.
                        log.warning(
                            "feed topic %s has %d partitions, not 1; run "
                            "`python -m services.stack create-topics` on a new cluster",
                            t,
                            len(parts),
                        )
                    out += [TopicPartition(t, p) for p in parts]
                return out
            if not warned:
                log.warning("feed: waiting for topics %s to be created", missing)
                warned = True
            self._stop.wait(1.0)
        return []
