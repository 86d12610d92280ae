"""The worker's Faust consumer waits at most the configured time per fetch.

The real path runs in every stack test (the worker uses this transport); this checks the
override itself: whatever consumer Faust builds gets the app's fetch wait before it starts.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from faust.transport.drivers import aiokafka as driver

from services.recommender.transport import _ConsumerThread


def test_consumer_gets_the_apps_fetch_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    built = SimpleNamespace(_fetch_max_wait_ms=1500)  # what Faust hard-codes
    monkeypatch.setattr(
        driver.AIOKafkaConsumerThread, "_create_worker_consumer", lambda self, t: built
    )
    thread = _ConsumerThread.__new__(_ConsumerThread)  # no Faust service machinery needed
    thread.app = SimpleNamespace(fetch_max_wait_ms=77)  # type: ignore[assignment]
    consumer = thread._create_worker_consumer(transport=None)
    assert consumer is built and consumer._fetch_max_wait_ms == 77
