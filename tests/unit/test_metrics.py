"""The worker's Prometheus metrics (services/recommender/metrics.py), read back from the
text exposition exactly as Prometheus would parse it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.contract.events import Recommendation
from services.recommender.metrics import (
    CONTENT_TYPE,
    ConsumerLag,
    TopicPartition,
    WorkerExporter,
    WorkerGauges,
    WorkerMetrics,
    split_model_version,
)
from services.recommender.timing import BatchTimer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(exposition: bytes) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def scrape(exporter: WorkerExporter) -> Samples:
    return samples(asyncio.run(exporter.scrape()))


def rec(event_id: str, model_version: str = "scorer:3", segment: int | None = 1) -> Recommendation:
    return Recommendation(
        user_id="u",
        event_id=event_id,
        items=[],
        model_version=model_version,
        segment=segment,
        generated_at=datetime(2026, 1, 1, tzinfo=UTC),
        latency_ms=1.0,
    )


def test_counters_histograms_and_labels_after_known_batches() -> None:
    tally = WorkerMetrics()
    exporter = WorkerExporter(tally)
    # What the clicks agent does for two batches: 3 messages (one dead-lettered), then 2
    # (one a duplicate); the tally is the agent's own count.
    exporter.dead_letter("clicks")
    exporter.batch(
        BatchTimer({"state": 0.002, "scorer_call": 0.02}), 3, [rec("e1"), rec("e2", segment=None)]
    )
    exporter.batch(BatchTimer({"state": 0.0004, "scorer_call": 0.3}), 2, [rec("e3", segment=1)])
    exporter.dead_letter("items")
    tally.clicks, tally.recommendations, tally.duplicates, tally.batches = 5, 3, 1, 2
    tally.dead_letters, tally.items, tally.degraded = 2, 4, 0

    found = scrape(exporter)

    assert value(found, "streamrec_clicks_total") == 5
    assert value(found, "streamrec_recommendations_total") == 3
    assert value(found, "streamrec_duplicates_total") == 1
    assert value(found, "streamrec_batches_total") == 2
    assert value(found, "streamrec_items_total") == 4
    assert value(found, "streamrec_degraded_recommendations_total") == 0
    assert value(found, "streamrec_dead_letters_total", topic="clicks") == 1
    assert value(found, "streamrec_dead_letters_total", topic="items") == 1
    # One observation per batch and stage; buckets are cumulative.
    assert value(found, "streamrec_stage_seconds_count", stage="scorer_call") == 2
    assert value(found, "streamrec_stage_seconds_sum", stage="scorer_call") == pytest.approx(0.32)
    assert value(found, "streamrec_stage_seconds_bucket", stage="scorer_call", le="0.025") == 1
    assert value(found, "streamrec_stage_seconds_bucket", stage="state", le="0.0005") == 1
    assert value(found, "streamrec_stage_seconds_bucket", stage="state", le="+Inf") == 2
    assert value(found, "streamrec_batch_seconds_sum") == pytest.approx(0.3224)
    assert value(found, "streamrec_batch_clicks_count") == 2
    assert value(found, "streamrec_batch_clicks_sum") == 5
    assert value(found, "streamrec_batch_clicks_bucket", le="2.0") == 1
    assert value(found, "streamrec_segment_recommendations_total", segment="1") == 2
    assert value(found, "streamrec_segment_recommendations_total", segment="none") == 1
    assert value(found, "streamrec_model_info", lane="serving", model="scorer", version="3") == 1


def test_the_model_series_follows_the_latest_batch_and_the_shadow_lane() -> None:
    shadow = WorkerGauges(shadow_version="scorer:challenger-17", shadow_scored_clicks=7)
    exporter = WorkerExporter(WorkerMetrics(), lambda: shadow)
    exporter.batch(BatchTimer(), 1, [rec("e1", model_version="scorer:3")])
    exporter.batch(BatchTimer(), 1, [rec("e2", model_version="fallback-linear")])
    exporter.batch(BatchTimer(), 0, [])  # a batch without answers changes nothing

    models = {
        dict(labels)["lane"]: dict(labels)
        for (name, labels), _ in scrape(exporter).items()
        if name == "streamrec_model_info"
    }

    assert models["serving"] == {"lane": "serving", "model": "fallback-linear", "version": ""}
    assert models["shadow"] == {"lane": "shadow", "model": "scorer", "version": "challenger-17"}
    assert value(scrape(exporter), "streamrec_shadow_scored_clicks_total") == 7


def test_no_model_series_before_the_first_answer() -> None:
    found = scrape(WorkerExporter(WorkerMetrics()))
    assert not [name for name, _ in found if name == "streamrec_model_info"]


def test_state_gauges_are_read_at_each_scrape() -> None:
    state = {"users": 1}

    def gauges() -> WorkerGauges:
        return WorkerGauges(
            catalog_items=150,
            embedded_items=140,
            items_pending_embedding=10,
            users_in_memory=state["users"],
            scorer_breaker_open=True,
            feed_lag=4,
        )

    exporter = WorkerExporter(WorkerMetrics(), gauges)
    assert value(scrape(exporter), "streamrec_users_in_memory") == 1
    state["users"] = 60
    found = scrape(exporter)
    assert value(found, "streamrec_users_in_memory") == 60
    assert value(found, "streamrec_catalog_items") == 150
    assert value(found, "streamrec_embedded_items") == 140
    assert value(found, "streamrec_items_pending_embedding") == 10
    assert value(found, "streamrec_scorer_breaker_open") == 1
    assert value(found, "streamrec_feed_lag_records") == 4


def test_click_latency_runs_from_the_kafka_timestamp_to_the_handoff() -> None:
    now = [100.25]
    exporter = WorkerExporter(WorkerMetrics(), clock=lambda: now[0])
    exporter.answered(100.0)  # 250 ms
    exporter.answered(None)  # a message without a timestamp: nothing to measure
    exporter.answered(-0.001)  # librdkafka's "no timestamp" (-1 ms)
    exporter.answered(100.3)  # the producer's clock runs ahead of ours: clamped to 0

    found = scrape(exporter)

    name = "streamrec_click_to_recommendation_seconds"
    assert value(found, f"{name}_count") == 2
    assert value(found, f"{name}_sum") == pytest.approx(0.25)
    assert value(found, f"{name}_bucket", le="0.005") == 1
    assert value(found, f"{name}_bucket", le="0.2") == 1
    assert value(found, f"{name}_bucket", le="0.3") == 2


class FakeOffsets:
    """The consumer's view of its partitions; ``delay_s`` makes the broker slow."""

    def __init__(
        self,
        assigned: Iterable[TopicPartition],
        ends: Mapping[TopicPartition, int],
        starts: Mapping[TopicPartition, int],
        committed: Mapping[TopicPartition, int],
        delay_s: float = 0.0,
    ) -> None:
        self.assigned, self.ends, self.starts = set(assigned), dict(ends), dict(starts)
        self.committed_offsets, self.delay_s = dict(committed), delay_s

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def highwaters(self, *partitions: Any) -> Mapping[Any, int]:
        await asyncio.sleep(self.delay_s)
        return {tp: self.ends[tp] for tp in partitions if tp in self.ends}

    async def earliest_offsets(self, *partitions: Any) -> Mapping[Any, int]:
        return {tp: self.starts[tp] for tp in partitions if tp in self.starts}

    def committed(self, partition: Any) -> int | None:
        return self.committed_offsets.get(partition)


C0, C1, I0 = TopicPartition("clicks", 0), TopicPartition("clicks", 1), TopicPartition("items", 0)
CHANGELOG = TopicPartition("streamrec-users-changelog", 0)


def lag_of(found: Samples) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["topic"], dict(labels)["partition"]): v
        for (name, labels), v in found.items()
        if name == "streamrec_consumer_lag_messages"
    }


def test_lag_is_end_minus_committed_or_log_start_for_the_agents_topics() -> None:
    offsets = FakeOffsets(
        assigned=[C0, C1, I0, CHANGELOG],
        ends={C0: 10, C1: 5, I0: 3, CHANGELOG: 99},
        starts={C0: 0, C1: 2, I0: 0, CHANGELOG: 0},
        committed={C0: 7, I0: 3},  # the group never committed on clicks:1
    )
    exporter = WorkerExporter(WorkerMetrics(), lag=ConsumerLag(offsets))

    found = scrape(exporter)

    assert lag_of(found) == {("clicks", "0"): 3, ("clicks", "1"): 3, ("items", "0"): 0}
    assert value(found, "streamrec_consumer_lag_errors_total") == 0
    # A revoked partition's series goes with it.
    offsets.assigned = {C1}
    assert lag_of(scrape(exporter)) == {("clicks", "1"): 3}


def test_a_slow_broker_costs_the_lag_series_not_the_scrape() -> None:
    offsets = FakeOffsets([C0], ends={C0: 10}, starts={C0: 0}, committed={C0: 4})
    lag = ConsumerLag(offsets, timeout_s=0.05)
    exporter = WorkerExporter(WorkerMetrics(), lag=lag)
    assert lag_of(scrape(exporter)) == {("clicks", "0"): 6}

    offsets.delay_s = 5.0
    found = scrape(exporter)

    assert lag_of(found) == {}, "a stale value would look current"
    assert value(found, "streamrec_consumer_lag_errors_total") == 1
    assert value(found, "streamrec_clicks_total") == 0


def test_each_exporter_has_its_own_registry() -> None:
    first, second = WorkerExporter(WorkerMetrics()), WorkerExporter(WorkerMetrics())
    first.dead_letter("clicks")
    assert value(scrape(first), "streamrec_dead_letters_total", topic="clicks") == 1
    assert value(scrape(second), "streamrec_dead_letters_total", topic="clicks") == 0
    default = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert "streamrec_" not in default


def test_the_content_type_names_the_format_written() -> None:
    # generate_latest writes 0.0.4; CONTENT_TYPE_LATEST would promise 1.0.0.
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("scorer:3", ("scorer", "3")),
        ("scorer-shadow:unlabelled", ("scorer-shadow", "unlabelled")),
        ("fallback-linear", ("fallback-linear", "")),
    ],
)
def test_split_model_version(label: str, expected: tuple[str, str]) -> None:
    assert split_model_version(label) == expected


def test_the_workers_own_memory_and_cpu_are_exported() -> None:
    import os
    from pathlib import Path

    found = scrape(WorkerExporter(WorkerMetrics()))
    rss = value(found, "process_resident_memory_bytes")
    kib = next(
        int(line.split()[1])
        for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    # The same process, read twice a moment apart: within 10% of each other.
    assert abs(rss - kib * 1024) < 0.1 * kib * 1024
    assert value(found, "process_cpu_seconds_total") > 0
