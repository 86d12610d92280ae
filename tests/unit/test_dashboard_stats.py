"""The dashboard's aggregation, fed with real contract records: rates per second, the
latest answers with titles, segment sizes, and the click -> answer latency join."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from services.contract import codec
from services.contract.events import (
    CLICKS,
    ITEMS,
    RECOMMENDATIONS,
    ItemEvent,
    Recommendation,
    RecommendedItem,
)
from services.dashboard.follower import StreamFollower
from services.dashboard.series import PerSecond, percentile
from services.dashboard.stats import LiveStats
from services.kafka.settings import KafkaSettings
from services.kafka.titles import Titles


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rec(
    event_id: str,
    user: str = "u1",
    segment: int | None = 0,
    items: tuple[str, ...] = ("i1", "i2"),
    latency_ms: float = 10.0,
    version: str = "scorer:1",
    degraded: bool = False,
) -> Recommendation:
    return Recommendation(
        user_id=user,
        event_id=event_id,
        items=[
            RecommendedItem(item_id=i, score=1.0 - n / 10, reasons=[f"because of {i}"])
            for n, i in enumerate(items)
        ],
        model_version=version,
        segment=segment,
        generated_at=datetime(2025, 1, 1, tzinfo=UTC),
        latency_ms=latency_ms,
        degraded=degraded,
    )


def no_titles(item_id: str) -> str | None:
    return None


def test_counts_land_in_their_second_and_rates_use_complete_seconds() -> None:
    clock = Clock(1000.2)
    stats = LiveStats(window_s=30, rate_s=2, clock=clock)
    for n in range(3):
        stats.add_recommendation(rec(f"a{n}"), None)
    clock.now = 1001.5
    for n in range(2):
        stats.add_recommendation(rec(f"b{n}"), None)
    for n in range(4):
        stats.add_click(f"c{n}", None)
    clock.now = 1002.1
    stats.add_recommendation(rec("c0"), None)  # the current second: not in the rate yet

    snap = stats.snapshot(no_titles)
    assert len(snap["seconds"]) == 30 and snap["seconds"][-1] == 1002
    assert snap["throughput"]["recommendations"][-3:] == [3, 2, 1]
    assert snap["throughput"]["clicks"][-3:] == [0, 4, 0]
    assert snap["throughput"]["recommendations_per_s"] == 2.5  # (3 + 2) / 2 s
    assert snap["throughput"]["clicks_per_s"] == 2.0
    assert snap["throughput"]["peak_recommendations_per_s"] == 3
    assert snap["throughput"]["recommendations_in_window"] == 6
    assert snap["totals"]["recommendations"] == 6 and snap["totals"]["clicks"] == 4

    clock.now = 1002.1 + 31  # the whole window has passed
    later = stats.snapshot(no_titles)
    assert sum(later["throughput"]["recommendations"]) == 0
    assert later["throughput"]["recommendations_per_s"] == 0
    assert later["totals"]["recommendations"] == 6  # totals are since the start


def test_latest_keeps_the_newest_n_with_titles_and_reasons() -> None:
    titles = Titles()
    item = ItemEvent(item_id="i1", title="The Film")
    assert titles.add(codec.encode(item))
    assert not titles.add(b'{"item_id": "no-title"}')  # breaks the contract: skipped
    stats = LiveStats(latest=3, clock=Clock(50.0))
    for n in range(5):
        stats.add_recommendation(rec(f"e{n}", user=f"u{n}", degraded=n == 4), None)

    latest = stats.snapshot(titles.get)["latest"]
    assert [r["event_id"] for r in latest] == ["e4", "e3", "e2"]
    first = latest[0]
    assert first["user_id"] == "u4" and first["degraded"] is True
    assert first["generated_at"].startswith("2025-01-01T00:00:00.000")
    assert [(i["item_id"], i["title"]) for i in first["items"]] == [
        ("i1", "The Film"),
        ("i2", None),
    ]
    assert first["items"][0]["reasons"] == ["because of i1"]


def test_segment_sizes_follow_each_users_latest_segment() -> None:
    stats = LiveStats(max_users=3, clock=Clock(0.0))
    stats.add_recommendation(rec("1", user="a", segment=1), None)
    stats.add_recommendation(rec("2", user="b", segment=1), None)
    stats.add_recommendation(rec("3", user="c", segment=2), None)
    stats.add_recommendation(rec("4", user="a", segment=2), None)  # a moves: 1 -> 2
    seg = stats.snapshot(no_titles)["segments"]
    assert seg["users"] == 3
    assert seg["sizes"] == [{"segment": "2", "users": 2}, {"segment": "1", "users": 1}]

    # A fourth user: the least recently seen (b) is forgotten, with its count.
    stats.add_recommendation(rec("5", user="d", segment=None), None)
    seg = stats.snapshot(no_titles)["segments"]
    assert seg["users"] == 3
    assert {s["segment"]: s["users"] for s in seg["sizes"]} == {"2": 2, "none": 1}


def test_end_to_end_latency_joins_click_and_answer_in_either_order() -> None:
    stats = LiveStats(clock=Clock(10.0))
    stats.add_click("x", 5_000)
    stats.add_recommendation(rec("x", latency_ms=20.0), 5_120)  # click read first
    stats.add_recommendation(rec("y", latency_ms=40.0), 7_300)  # answer read first
    stats.add_click("y", 7_000)
    stats.add_recommendation(rec("z", latency_ms=30.0), 9_000)  # its click is never read

    snap = stats.snapshot(no_titles)
    by_event = {r["event_id"]: r["end_to_end_ms"] for r in snap["latest"]}
    assert by_event == {"x": 120.0, "y": 300.0, "z": None}
    lat = snap["latency_ms"]
    assert lat["end_to_end"]["n"] == 2 and lat["end_to_end"]["p50"] == 120.0
    assert lat["end_to_end"]["p99"] == 300.0
    assert lat["worker"] == {"n": 3, "p50": 30.0, "p95": 40.0, "p99": 40.0}
    assert lat["end_to_end_p50"][-1] == 120.0 and lat["end_to_end_p50"][0] is None
    assert snap["model_versions"] == {"scorer:1": 3}


def test_waiting_join_sides_are_bounded() -> None:
    stats = LiveStats(max_pending=2, clock=Clock(0.0))
    for n in range(3):
        stats.add_click(f"c{n}", 1_000)  # c0 is dropped when c2 arrives
    stats.add_recommendation(rec("c0"), 2_000)
    stats.add_recommendation(rec("c2"), 2_000)
    assert stats.snapshot(no_titles)["latency_ms"]["end_to_end"]["n"] == 1


def test_per_second_samples_values_beyond_its_cap_but_counts_them_all() -> None:
    series = PerSecond(window_s=5, max_values=10)
    for v in range(1000):
        series.add(3.5, float(v))
    (_, bucket) = series.window(3.9)[-1]
    assert bucket.count == 1000 and len(bucket.values) == 10
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0 and percentile([], 0.5) is None


def test_follower_applies_real_kafka_messages_by_topic() -> None:
    stats = LiveStats(clock=Clock(100.0))
    titles = Titles()
    follower = StreamFollower(KafkaSettings(), stats, titles)

    def message(topic: str, value: bytes, ts: int, offset: int = 0) -> Message:
        return Message(
            topic=topic, partition=0, offset=offset, value=value,
            timestamp=(TIMESTAMP_CREATE_TIME, ts),
        )  # fmt: skip

    follower.apply(message(ITEMS, codec.encode(ItemEvent(item_id="i1", title="Heat")), 1))
    follower.apply(message(CLICKS, json.dumps({"user_id": "u", "item_id": "i1"}).encode(), 500, 7))
    follower.apply(message(CLICKS, b"not json", 600))
    follower.apply(message(RECOMMENDATIONS, codec.encode(rec("clicks-0-7")), 540))
    follower.apply(message(RECOMMENDATIONS, b"{}", 550))

    snap = stats.snapshot(titles.get)
    assert snap["totals"] == {"recommendations": 1, "clicks": 2, "degraded": 0, "unreadable": 1}
    # The click came without an event_id: the worker derives one from its position.
    assert snap["latest"][0]["end_to_end_ms"] == 40.0
    assert snap["latest"][0]["items"][0]["title"] == "Heat"
