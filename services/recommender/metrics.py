"""The worker's metrics: the running tally /healthz shows, and its Prometheus view.

:class:`WorkerMetrics` is the tally the agents keep (clicks, answers, duplicates, ...).
:class:`WorkerExporter` publishes it on ``/metrics`` in Prometheus' text format, with what
a tally cannot hold: per-stage and per-batch histograms, click-to-recommendation latency,
dead letters by topic, the served model version, the worker's state sizes and its consumer
lag. Everything lives on the exporter's own :class:`CollectorRegistry`, never the global
default, so several apps (tests, benchmarks) can share one process.

Counters that the tally already holds are read from it at scrape time by a custom
collector rather than counted twice: /healthz, the tests and the benchmarks read the
tally, and a second count kept beside it could drift from it the day someone adds an
increment to one and not the other. The hot path pays nothing for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from services.contract.events import CLICKS, ITEMS, Recommendation
from services.kafka.io import end_offsets
from services.recommender.timing import BatchTimer

log = logging.getLogger(__name__)

# generate_latest writes text format 0.0.4; prometheus_client's CONTENT_TYPE_LATEST names
# 1.0.0, which Prometheus 3 would parse by a different set of rules than we wrote by.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Per-batch stage times run from ~50 us (feed sync) to seconds (a scorer timeout).
STAGE_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip
# End to end: p50 ~90 ms and p99 ~0.3-0.7 s on the embedded stack (README), seconds to
# minutes while a backlog drains; dense where the quantiles usually fall.
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0,
    30.0, 60.0, 120.0,
)  # fmt: skip
# Clicks per batch: at most STREAMREC_BATCH_MAX (256 by default).
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

# The topics whose partitions the agents consume: lag is reported for each assigned one.
LAG_TOPICS = (CLICKS, ITEMS)
# A scrape waits at most this long for the broker's offsets (Prometheus' own scrape
# timeout is 10 s by default); past it the lag series are left out of that scrape.
LAG_TIMEOUT_S = 2.0


@dataclass
class WorkerMetrics:
    """The agents' running tally (also the counters of /healthz)."""

    clicks: int = 0
    recommendations: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    degraded: int = 0
    items: int = 0
    batches: int = 0


@dataclass(frozen=True)
class WorkerGauges:
    """The worker's state as a scrape finds it; the app builds one per scrape."""

    catalog_items: int = 0
    embedded_items: int = 0
    items_pending_embedding: int = 0
    users_in_memory: int = 0
    scorer_breaker_open: bool = False
    feed_lag: int | None = None  # shared-state feed records not yet read
    shadow_version: str | None = None  # the challenger in shadow, if one is loaded
    shadow_scored_clicks: int = 0
    shadow_failures: int = 0


class TopicPartition(NamedTuple):
    """Faust's ``TP`` has this shape; any (topic, partition) tuple does."""

    topic: str
    partition: int


class OffsetReader(Protocol):
    """What the lag gauge needs from the consumer (:class:`FaustOffsets` in the worker)."""

    def assignment(self) -> Iterable[Any]: ...

    async def highwaters(self, *partitions: Any) -> Mapping[Any, int]: ...

    async def earliest_offsets(self, *partitions: Any) -> Mapping[Any, int]: ...

    def committed(self, partition: Any) -> int | None: ...


class FaustOffsets:
    """:class:`OffsetReader` over a Faust app's consumer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def assignment(self) -> Iterable[Any]:
        return self.app.consumer.assignment()

    async def highwaters(self, *partitions: Any) -> Mapping[Any, int]:
        # A ListOffsets request from the consumer's own thread: awaited, never blocking
        # the loop. aiokafka's cached highwater would go stale exactly when lag matters:
        # a stalled agent soon stops the fetches that refresh it.
        listed = await self.app.consumer.highwaters(*partitions)
        settings = getattr(self.app, "kafka_settings", None)
        known = {(tp.topic, tp.partition): end for tp, end in listed.items() if end is not None}
        if settings is None or not known:
            return listed
        # tansu lists a partition's last batch's first offset + 1, so lag would under-count
        # by up to a batch per partition; end_offsets reads each true end (services/kafka/io).
        ends = await asyncio.get_running_loop().run_in_executor(None, end_offsets, settings, known)
        return {tp: ends.get((tp.topic, tp.partition), end) for tp, end in listed.items()}

    async def earliest_offsets(self, *partitions: Any) -> Mapping[Any, int]:
        return await self.app.consumer.earliest_offsets(*partitions)

    def committed(self, partition: Any) -> int | None:
        # Faust keeps the group's committed offset per partition (read from the broker on
        # assignment, updated on every commit) only in this private mapping; there is no
        # public accessor. tests/integration/test_worker_metrics.py fails if it moves.
        offsets = self.app.consumer._committed_offset
        value = offsets.get(partition)
        return None if value is None else int(value)


class ConsumerLag:
    """Lag per assigned partition: the partition's end offset minus the group's committed
    offset (from the log start if the group never committed there), the number
    ``kafka-consumer-groups --describe`` reports. The worker commits a batch only after its
    answers are delivered, so this counts clicks not yet durably answered.

    Refreshed when Prometheus scrapes (no traffic while nobody looks), with a timeout so
    a rebalance or a slow broker costs one scrape its lag series, not the scrape.
    """

    def __init__(
        self,
        offsets: OffsetReader,
        topics: Sequence[str] = LAG_TOPICS,
        timeout_s: float = LAG_TIMEOUT_S,
    ) -> None:
        self.offsets, self.topics, self.timeout_s = offsets, tuple(topics), timeout_s
        self.lag: dict[TopicPartition, int] = {}
        self.errors = 0

    async def refresh(self) -> None:
        try:
            assigned = [tp for tp in self.offsets.assignment() if tp.topic in self.topics]
            if not assigned:
                self.lag = {}
                return
            ends, starts = await asyncio.wait_for(
                asyncio.gather(
                    self.offsets.highwaters(*assigned), self.offsets.earliest_offsets(*assigned)
                ),
                timeout=self.timeout_s,
            )
        except Exception as exc:  # a scrape must not fail because the broker did
            self.errors += 1
            self.lag = {}  # an absent series, not a stale number that looks current
            log.warning("consumer lag not read: %r", exc)
            return
        lag = {}
        for tp in assigned:
            end = ends.get(tp)
            if end is None:
                continue
            committed = self.offsets.committed(tp)
            base = committed if committed is not None else starts.get(tp, 0)
            lag[TopicPartition(tp.topic, tp.partition)] = max(0, end - base)
        self.lag = lag


def split_model_version(model_version: str) -> tuple[str, str]:
    """``"scorer:3"`` -> (``"scorer"``, ``"3"``); a label without a version (the fallback's
    ``fallback-linear``) keeps an empty version."""
    model, sep, version = model_version.rpartition(":")
    return (model, version) if sep else (model_version, "")


class WorkerExporter:
    """The worker's Prometheus metrics, on a registry of their own.

    The agents call :meth:`batch` where they record a batch's stage times, :meth:`answered`
    as each recommendation is handed to the producer and :meth:`dead_letter` beside the
    tally's count; the rest is read from the tally, ``gauges()`` and ``lag`` at scrape time.
    """

    def __init__(
        self,
        tally: WorkerMetrics,
        gauges: Callable[[], WorkerGauges] = WorkerGauges,
        lag: ConsumerLag | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tally, self.gauges, self.lag, self.clock = tally, gauges, lag, clock
        # auto_describe: the custom collector's names are checked for clashes too.
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.served_model: str | None = None  # the latest batch's model_version
        self.stage_seconds = Histogram(
            "streamrec_stage_seconds",
            "Time one click batch spent in each stage (services/recommender/timing.py).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "streamrec_batch_seconds",
            "Time one click batch took, all stages together.",
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.batch_clicks = Histogram(
            "streamrec_batch_clicks",
            "Click messages per batch (bad and duplicate ones included).",
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        # From the click's Kafka timestamp, not its event time: event time is whatever the
        # client says (a replay of 1998's MovieLens clicks would report decades), while
        # the Kafka timestamp is when the click entered the system (the producer's clock
        # at send, or the broker's on a LogAppendTime topic). Skew between that clock and
        # the worker's is the one error left; negative values are clamped to 0.
        self.click_latency = Histogram(
            "streamrec_click_to_recommendation_seconds",
            "From the click's Kafka timestamp to its recommendation handed to the producer.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "streamrec_dead_letters",
            "Messages sent to a dead-letter topic, by the topic they came from. (The codec "
            "gives a free-text reason only; it is in the dead-letter record.)",
            ["topic"],
            registry=self.registry,
        )
        self.segment_recommendations = Counter(
            "streamrec_segment_recommendations",
            "Recommendations by the user's segment at the click ('none' without segments).",
            ["segment"],
            registry=self.registry,
        )
        for topic in (CLICKS, ITEMS):
            # A series from the start: rate() of a counter that appears at 1 misses the 1.
            self.dead_letters.labels(topic=topic)
        self.registry.register(_StateCollector(self))
        # process_resident_memory_bytes, process_cpu_seconds_total, open fds: the worker's
        # own footprint (memory under a burst, docs/RELIABILITY.md). The default registry
        # would carry it too, but this one is the worker's own.
        ProcessCollector(registry=self.registry)

    # -- called by the agents ----------------------------------------------------------

    def batch(
        self, timer: BatchTimer, clicks: int, recommendations: Sequence[Recommendation]
    ) -> None:
        """One click batch done: its stage times, its size, its answers' model and segments."""
        for stage, seconds in timer.stages.items():
            self.stage_seconds.labels(stage=stage).observe(seconds)
        self.batch_seconds.observe(sum(timer.stages.values()))
        self.batch_clicks.observe(clicks)
        segments = Tally("none" if r.segment is None else str(r.segment) for r in recommendations)
        for segment, n in segments.items():
            self.segment_recommendations.labels(segment=segment).inc(n)
        if recommendations:
            self.served_model = recommendations[-1].model_version

    def answered(self, click_timestamp_s: float | None) -> None:
        """A recommendation was handed to the producer; ``click_timestamp_s`` is its click's
        Kafka timestamp (None or <= 0 when the message had none)."""
        if click_timestamp_s is None or click_timestamp_s <= 0:
            return
        self.click_latency.observe(max(0.0, self.clock() - click_timestamp_s))

    def dead_letter(self, topic: str) -> None:
        self.dead_letters.labels(topic=topic).inc()

    # -- scrape --------------------------------------------------------------------------

    async def scrape(self) -> bytes:
        """The text exposition, with the consumer lag read just before."""
        if self.lag is not None:
            await self.lag.refresh()
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """The tally's counters and the state gauges, read when Prometheus scrapes."""

    def __init__(self, exporter: WorkerExporter) -> None:
        self.exporter = exporter

    def collect(self) -> Iterator[Metric]:
        ex = self.exporter
        tally, gauges = ex.tally, ex.gauges()
        counters = (
            ("streamrec_clicks", "Click messages consumed (bad and duplicate ones included).",
             tally.clicks),
            ("streamrec_recommendations", "Recommendations published (one per new click).",
             tally.recommendations),
            ("streamrec_duplicates", "Clicks dropped as replays of an answered event_id.",
             tally.duplicates),
            ("streamrec_degraded_recommendations",
             "Recommendations ranked by the fallback while the scorer failed.", tally.degraded),
            ("streamrec_items", "Catalog events accepted.", tally.items),
            ("streamrec_batches", "Click batches processed.", tally.batches),
            ("streamrec_shadow_scored_clicks", "Clicks the shadow challenger ranked.",
             gauges.shadow_scored_clicks),
            ("streamrec_shadow_failures", "Shadow scoring calls that failed.",
             gauges.shadow_failures),
        )  # fmt: skip
        for name, doc, value in counters:
            yield CounterMetricFamily(name, doc, value=value)
        lag_errors = ex.lag.errors if ex.lag is not None else 0
        yield CounterMetricFamily(
            "streamrec_consumer_lag_errors",
            "Scrapes whose consumer lag could not be read from the broker.",
            value=lag_errors,
        )
        plain = (
            ("streamrec_catalog_items", "Items in the catalog.", gauges.catalog_items),
            ("streamrec_embedded_items", "Items with a text embedding.", gauges.embedded_items),
            ("streamrec_items_pending_embedding", "Items waiting for the encoder.",
             gauges.items_pending_embedding),
            ("streamrec_users_in_memory", "Users in this worker's table partitions.",
             gauges.users_in_memory),
            ("streamrec_scorer_breaker_open",
             "1 while the scorer's circuit breaker ranks with the fallback.",
             int(gauges.scorer_breaker_open)),
        )  # fmt: skip
        for name, doc, value in plain:
            yield GaugeMetricFamily(name, doc, value=value)
        feed = GaugeMetricFamily(
            "streamrec_feed_lag_records",
            "Shared-state feed records (item-activity, item-embeddings) not yet read.",
        )
        if gauges.feed_lag is not None:
            feed.add_metric([], gauges.feed_lag)
        yield feed
        lag = GaugeMetricFamily(
            "streamrec_consumer_lag_messages",
            "Per assigned partition: end offset minus the group's committed offset.",
            labels=["topic", "partition"],
        )
        for tp, value in sorted((ex.lag.lag if ex.lag is not None else {}).items()):
            lag.add_metric([tp.topic, str(tp.partition)], value)
        yield lag
        info = InfoMetricFamily(
            "streamrec_model",
            "The model that ranked the latest batch (lane serving) and the challenger in "
            "shadow (lane shadow), as the scorer reports them.",
            labels=["lane"],
        )
        if ex.served_model is not None:
            model, version = split_model_version(ex.served_model)
            info.add_metric(["serving"], {"model": model, "version": version})
        if gauges.shadow_version is not None:
            model, version = split_model_version(gauges.shadow_version)
            info.add_metric(["shadow"], {"model": model, "version": version})
        yield info
