"""Follows the stream for the dashboard on a background thread (confluent-kafka).

``recommendations`` and ``clicks`` are read from their ends (the dashboard shows what
happens from now on, not hours of history); ``items`` from the beginning, for titles.
Partitions are assigned, not subscribed: no consumer group, no rebalance to wait for,
no offsets committed. If the broker goes away the thread retries every few seconds and
the page says so; a record that breaks the contract is counted and skipped.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_NOT_AVAILABLE, Message, TopicPartition
from pydantic import ValidationError

from services.contract.codec import derived_event_id
from services.contract.events import CLICKS, ITEMS, RECOMMENDATIONS, Recommendation
from services.dashboard.stats import LiveStats
from services.kafka.settings import KafkaSettings
from services.kafka.titles import Titles

log = logging.getLogger(__name__)


def _timestamp_ms(msg: Message) -> int | None:
    kind, value = msg.timestamp()
    return None if kind == TIMESTAMP_NOT_AVAILABLE else int(value)


def click_event_id(msg: Message) -> str | None:
    """The event_id the worker gives this ``clicks`` record (derived from its position when
    the producer sent none), or None when it is not a JSON object (it gets no answer)."""
    try:
        value: Any = json.loads(msg.value() or b"")
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(value, dict):
        return None
    event_id = value.get("event_id")
    if event_id is None:
        return derived_event_id(msg.topic() or CLICKS, msg.partition() or 0, msg.offset() or 0)
    return str(event_id)


class StreamFollower:
    """Feeds :class:`LiveStats` and :class:`Titles` from the broker."""

    def __init__(
        self, kafka: KafkaSettings, stats: LiveStats, titles: Titles, retry_s: float = 3.0
    ) -> None:
        self.kafka, self.stats, self.titles = kafka, stats, titles
        self.retry_s = retry_s
        self.error: str | None = None
        self.positioned = threading.Event()  # set once the reader first stood at the ends
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dashboard-follower", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def is_positioned(self) -> bool:
        return self.positioned.is_set()

    def status(self) -> dict[str, Any]:
        return {
            "state": "reading" if self.error is None and self.positioned.is_set() else "down",
            "error": self.error,
            "titles": len(self.titles),
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._read()
            except Exception as exc:  # the broker may be restarting: retry, keep serving
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("reading the stream failed (%s); retrying", exc)
                self._stop.wait(self.retry_s)

    def _read(self) -> None:
        from services.kafka.io import consumer, partitions_at_end, records, rewind_replaced

        c = consumer(self.kafka)
        try:
            live = partitions_at_end(c, [RECOMMENDATIONS, CLICKS])
            catalog = [
                TopicPartition(ITEMS, tp.partition, OFFSET_BEGINNING)
                for tp in partitions_at_end(c, [ITEMS])
            ]
            c.assign(live + catalog)
            self.error = None
            self.positioned.set()
            next_offsets: dict[tuple[str, int], int] = {}
            while not self._stop.is_set():
                # A broker restarted empty: read the new logs from their start.
                rewind_replaced(c, next_offsets)
                for msg in records(c.consume(num_messages=1000, timeout=0.5)):
                    next_offsets[(msg.topic() or "", msg.partition() or 0)] = (
                        msg.offset() or 0
                    ) + 1
                    self.apply(msg)
        finally:
            c.close()

    def apply(self, msg: Message) -> None:
        topic = msg.topic()
        if topic == RECOMMENDATIONS:
            try:
                rec = Recommendation.model_validate_json(msg.value() or b"")
            except ValidationError:
                self.stats.add_unreadable()
                return
            self.stats.add_recommendation(rec, _timestamp_ms(msg))
        elif topic == CLICKS:
            # Counted even when malformed (clicks in); only a readable id joins an answer.
            self.stats.add_click(click_event_id(msg), _timestamp_ms(msg))
        elif topic == ITEMS:
            self.titles.add(msg.value())
