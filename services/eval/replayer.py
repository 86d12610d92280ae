"""Sends a replay stream: the catalog first (until the workers have it), then the clicks
in stream order, paced or flat out, stamping when each click was produced."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from services.contract.events import CLICKS, ITEMS, ClickEvent
from services.eval.stream import ReplayStream
from services.eval.workers import WorkerProbe, wait_for_catalog
from services.kafka.io import EventProducer, produce_events
from services.kafka.settings import KafkaSettings


@dataclass
class ReplayTimes:
    """Monotonic times of the replay (``time.monotonic()``)."""

    sent_at: dict[str, float] = field(default_factory=dict)  # event_id -> produce time
    catalog_started: float = 0.0
    catalog_ready: float = 0.0
    clicks_started: float = 0.0
    clicks_flushed: float = 0.0
    paused_s: float = 0.0  # between the replay's parts (a retraining), not sending
    paused_from: float = 0.0  # when that pause began


class Replayer:
    """Produces a :class:`ReplayStream` to the broker.

    ``rate`` is clicks per second (``None`` or 0: flat out). Without a ``probe`` the
    catalog is sent but not waited for.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        probe: WorkerProbe | None,
        *,
        rate: float | None = None,
        catalog_timeout_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kafka, self.probe = kafka, probe
        # One producer for the catalog and every part of the clicks: a new idempotent
        # producer holds what it is given until the broker issues it an id (~0.5 s on
        # tansu), which each part's first clicks would otherwise show as latency.
        self._producer: EventProducer | None = None
        self.rate = rate or None
        self.catalog_timeout_s = catalog_timeout_s
        self._clock = clock

    @property
    def producer(self) -> EventProducer:
        if self._producer is None:
            self._producer = EventProducer(self.kafka)
        return self._producer

    def send_catalog(self, stream: ReplayStream, times: ReplayTimes) -> None:
        before = self.probe.items_processed() if self.probe is not None else 0
        times.catalog_started = self._clock()
        produce_events(self.kafka, ITEMS, stream.items, producer=self.producer)
        if self.probe is not None:
            distinct = len({item.item_id for item in stream.items})
            wait_for_catalog(
                self.probe,
                before + len(stream.items),
                distinct,
                timeout_s=self.catalog_timeout_s,
            )
        times.catalog_ready = self._clock()

    def send_clicks(
        self,
        stream: ReplayStream,
        times: ReplayTimes,
        on_sent: Callable[[int], None] | None = None,
        part: slice = slice(None),
    ) -> None:
        """Send ``stream.clicks[part]``; the first part sent stamps ``clicks_started``."""
        if not times.clicks_started:
            times.clicks_started = self._clock()
        clicks = self._paced(stream.clicks[part], times, on_sent)
        produce_events(self.kafka, CLICKS, clicks, producer=self.producer)
        times.clicks_flushed = self._clock()

    def _paced(
        self,
        clicks: list[ClickEvent],
        times: ReplayTimes,
        on_sent: Callable[[int], None] | None,
    ) -> Iterator[ClickEvent]:
        # Paced here, not by produce_events, so the stamp is taken after the wait and
        # right before the click is handed to the producer.
        start = self._clock()
        for n, click in enumerate(clicks):
            if self.rate is not None:
                delay = start + n / self.rate - self._clock()
                if delay > 0:
                    time.sleep(delay)
            times.sent_at[click.event_id] = self._clock()
            if on_sent is not None and n % 100 == 99:
                on_sent(100)
            yield click
        if on_sent is not None and len(clicks) % 100:
            on_sent(len(clicks) % 100)
