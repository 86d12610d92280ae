"""Reads ``recommendations`` into the :class:`OnlineMonitor`, on a background thread.

It starts at the topic's end: online HR is about what is being served now, and after a
restart the detectors start afresh rather than re-reading hours of history. Assigned,
not subscribed (one trainer reads every partition; no group rebalance to wait for).
A record that does not parse is counted and skipped: the monitor only reads.
"""

from __future__ import annotations

import logging
import threading

from pydantic import ValidationError

from services.contract.events import RECOMMENDATIONS, Recommendation
from services.kafka.settings import KafkaSettings
from services.trainer.online import OnlineMonitor

log = logging.getLogger(__name__)


class RecommendationReader:
    def __init__(
        self, kafka: KafkaSettings, monitor: OnlineMonitor, topic: str = RECOMMENDATIONS
    ) -> None:
        self.kafka, self.monitor, self.topic = kafka, monitor, topic
        self.unreadable = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, ready_timeout_s: float = 30.0) -> bool:
        """Start reading; True once positioned at the topic's end (records after it count)."""
        self._thread = threading.Thread(target=self._run, name="online-monitor", daemon=True)
        self._thread.start()
        return self._ready.wait(ready_timeout_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._read()
            except Exception as exc:  # the broker may be restarting: retry, keep serving
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("online monitor: reading %s failed (%s); retrying", self.topic, exc)
                self._stop.wait(5.0)

    def _read(self) -> None:
        from services.kafka.io import consumer, partitions_at_end, records, rewind_replaced

        c = consumer(self.kafka)
        try:
            c.assign(partitions_at_end(c, [self.topic]))
            self.error = None
            self._ready.set()
            next_offsets: dict[tuple[str, int], int] = {}
            while not self._stop.is_set():
                # A broker restarted empty: read the new log from its start.
                rewind_replaced(c, next_offsets)
                for msg in records(c.consume(num_messages=1000, timeout=0.5)):
                    next_offsets[(msg.topic() or "", msg.partition() or 0)] = (
                        msg.offset() or 0
                    ) + 1
                    try:
                        rec = Recommendation.model_validate_json(msg.value() or b"")
                    except ValidationError:
                        self.unreadable += 1
                        continue
                    self.monitor.observe(rec)
        finally:
            c.close()
