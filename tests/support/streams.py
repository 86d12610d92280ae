"""Helpers for tests that produce to and read from the real broker."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import TopicPartition

from services.kafka.io import consumer
from services.kafka.settings import KafkaSettings


def collect(
    kafka: KafkaSettings,
    topic: str,
    want: Callable[[dict[str, Any]], bool],
    expected: int,
    timeout: float = 60.0,
    settle: float = 3.0,
) -> list[dict[str, Any]]:
    """Read ``topic`` from the start until ``expected`` wanted records arrived, then ``settle``
    seconds more (so duplicates would be seen too), or until ``timeout`` passed."""
    c = consumer(kafka)
    found: list[dict[str, Any]] = []
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        c.assign([TopicPartition(topic, p, -2) for p in md.partitions])
        deadline = time.monotonic() + timeout
        reached_at: float | None = None
        while time.monotonic() < deadline:
            if reached_at is not None and time.monotonic() - reached_at > settle:
                break
            msg = c.poll(0.2)
            if msg is None or msg.error():
                continue
            try:
                value = json.loads(msg.value()) if msg.value() else {}
            except ValueError:
                continue
            if isinstance(value, dict) and want(value):
                found.append(value)
                if len(found) >= expected and reached_at is None:
                    reached_at = time.monotonic()
    finally:
        c.close()
    return found
