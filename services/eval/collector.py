"""Reads ``recommendations`` (and ``clicks.dlq``) from their ends and joins them to the
replayed clicks by event_id, stamping when each arrived.

It is positioned at the topics' current end offsets *before* the first click is sent,
so every answer to the run is read and nothing older is.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException

from services.contract.events import CLICKS_DLQ, RECOMMENDATIONS
from services.kafka.io import consumer, partitions_at_end, records
from services.kafka.settings import KafkaSettings

# How the worker words a reason that only text similarity gives (services/recommender/
# explain.py): a list carrying one was shaped by the items' text embeddings.
TEXT_REASON = "similar description to"


@dataclass(frozen=True)
class Answer:
    """The first recommendation seen for one click."""

    received_at: float  # time.monotonic() when the collector read it
    items: list[str]  # best first
    worker_latency_ms: float | None
    degraded: bool
    model_version: str | None = None
    segment: int | str | None = None
    text_reason: bool = False  # some item is there for its text's similarity


class Joiner:
    """Matches records to the run's clicks: first answers, duplicates, dead letters.

    Records of other runs or producers are counted as ``foreign`` and otherwise ignored.
    """

    def __init__(self, expected: Iterable[str]) -> None:
        self.expected = set(expected)
        self.answers: dict[str, Answer] = {}
        self.duplicates: Counter[str] = Counter()  # event_id -> answers beyond the first
        self.dead_lettered: set[str] = set()
        self.foreign = 0
        self.unreadable = 0

    def add_recommendation(self, raw: bytes | None, received_at: float) -> bool:
        """Record one ``recommendations`` value; True when it is a first answer of the run."""
        value = _json_object(raw)
        event_id = value.get("event_id") if value is not None else None
        if value is None or not isinstance(event_id, str):
            self.unreadable += 1
            return False
        if event_id not in self.expected:
            self.foreign += 1
            return False
        if event_id in self.answers:
            self.duplicates[event_id] += 1
            return False
        items = value.get("items") or []
        latency = value.get("latency_ms")
        self.answers[event_id] = Answer(
            received_at=received_at,
            items=[str(i.get("item_id")) for i in items if isinstance(i, dict)],
            worker_latency_ms=float(latency) if isinstance(latency, int | float) else None,
            degraded=bool(value.get("degraded", False)),
            model_version=str(value.get("model_version")),
            segment=value.get("segment"),
            text_reason=any(
                str(reason).startswith(TEXT_REASON)
                for i in items
                if isinstance(i, dict)
                for reason in i.get("reasons") or ()
            ),
        )
        return True

    def add_dead_letter(self, raw: bytes | None) -> bool:
        """Record one ``clicks.dlq`` value; True when it rejects a click of the run."""
        record = _json_object(raw)
        payload = _json_object(str(record.get("payload", "")).encode()) if record else None
        event_id = payload.get("event_id") if payload is not None else None
        if event_id not in self.expected:
            return False
        self.dead_lettered.add(str(event_id))
        return True

    @property
    def settled(self) -> int:
        """Clicks with an outcome: answered or dead-lettered."""
        return len(self.answers) + len(self.dead_lettered - self.answers.keys())

    @property
    def complete(self) -> bool:
        return self.settled >= len(self.expected)


def _json_object(raw: bytes | None) -> dict[str, Any] | None:
    try:
        value = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


class KafkaCollector:
    """Feeds a :class:`Joiner` from the broker on a background thread."""

    def __init__(
        self,
        kafka: KafkaSettings,
        joiner: Joiner,
        on_answer: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.joiner = joiner
        self._kafka = kafka
        self._on_answer = on_answer
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._error: BaseException | None = None
        self.last_record_at = clock()

    def start(self) -> None:
        """Position at the topics' current ends (synchronously), then read in the background."""
        c = consumer(self._kafka)
        try:
            c.assign(partitions_at_end(c, (RECOMMENDATIONS, CLICKS_DLQ)))
        except KafkaException as exc:
            c.close()
            raise KafkaException(f"{exc.args[0]}; is the stack up?") from exc
        self._consumer = c
        self._thread = threading.Thread(target=self._run, name="eval-collector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._consumer is not None
        try:
            while not self._stop.is_set():
                messages = self._consumer.consume(num_messages=1000, timeout=0.2)
                if not messages:
                    continue
                now = self._clock()
                new = 0
                for msg in records(messages):
                    self.last_record_at = now
                    if msg.topic() == RECOMMENDATIONS:
                        new += self.joiner.add_recommendation(msg.value(), now)
                    else:
                        self.joiner.add_dead_letter(msg.value())
                if new and self._on_answer is not None:
                    self._on_answer(new)
        except BaseException as exc:  # surfaced by wait()/stop() in the caller's thread
            self._error = exc
        finally:
            self._consumer.close()

    def wait(
        self,
        *,
        idle_s: float,
        settle_s: float,
        since: float | None = None,
        timeout_s: float | None = None,
        settled: int | None = None,
    ) -> bool:
        """Block until every click has an outcome (then ``settle_s`` more, to catch
        duplicates), or nothing arrived for ``idle_s`` after ``since``; True if complete.

        ``settled``: done once that many clicks have an outcome (a replay's first part).
        """
        started = self._clock()
        quiet_from = since if since is not None else started
        while True:
            self._raise_if_failed()
            now = self._clock()
            if settled is not None and self.joiner.settled >= settled:
                return True
            if self.joiner.complete:
                time.sleep(settle_s)
                return True
            if now - max(self.last_record_at, quiet_from) > idle_s:
                return False
            if timeout_s is not None and now - started > timeout_s:
                return False
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"the collector stopped reading: {self._error}") from self._error
