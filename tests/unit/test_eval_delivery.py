"""Joining answers to clicks, completeness, percentiles, the plots' series, the catalog wait."""

from __future__ import annotations

import io
import json
import math
import sys

import pytest

from services.contract import codec
from services.eval.collector import Joiner
from services.eval.delivery import (
    bin_seconds,
    latency_histogram,
    measure,
    percentile,
    summarize,
    throughput_series,
)
from services.eval.progress import Progress
from services.eval.workers import catalog_ready


def rec(event_id: str, *items: str, latency: float = 5.0) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "user_id": "u",
            "items": [{"item_id": i, "score": 1.0, "reasons": []} for i in items],
            "model_version": "scorer:1",
            "latency_ms": latency,
            "degraded": False,
        }
    ).encode()


def dead(event_id: str) -> bytes:
    payload = json.dumps({"event_id": event_id, "user_id": "u"}).encode()
    record = codec.dead_letter(
        source_topic="clicks", partition=0, offset=1, error="bad", payload=payload
    )
    return codec.encode(record)


def test_joiner_keeps_first_answers_and_counts_duplicates_foreign_and_unreadable() -> None:
    joiner = Joiner(["e1", "e2", "e3"])
    assert joiner.add_recommendation(rec("e1", "a", "b"), received_at=1.0)
    assert not joiner.add_recommendation(rec("e1", "c"), received_at=2.0)
    assert not joiner.add_recommendation(rec("other-run", "a"), received_at=2.0)
    assert not joiner.add_recommendation(b"not json", received_at=2.0)
    assert joiner.add_dead_letter(dead("e3"))
    assert not joiner.add_dead_letter(dead("other-run"))
    assert joiner.answers["e1"].items == ["a", "b"] and joiner.answers["e1"].received_at == 1.0
    assert joiner.duplicates == {"e1": 1}
    assert (joiner.foreign, joiner.unreadable, joiner.settled) == (1, 1, 2)
    assert not joiner.complete
    joiner.add_recommendation(rec("e2"), received_at=3.0)
    assert joiner.complete


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, q) for q in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    assert summarize([1.0, 3.0])["mean"] == 2.0


def test_measure_counts_missing_duplicates_and_dead_letters_and_times_them() -> None:
    joiner = Joiner(["e1", "e2", "e3", "e4"])
    joiner.add_recommendation(rec("e1", latency=4.0), received_at=10.5)
    joiner.add_recommendation(rec("e1"), received_at=10.6)
    joiner.add_recommendation(rec("e2", latency=6.0), received_at=12.0)
    joiner.add_dead_letter(dead("e4"))
    sent_at = {"e1": 10.0, "e2": 10.0, "e3": 10.0, "e4": 10.0}
    d = measure(joiner, sent_at, clicks_started=10.0, clicks_flushed=10.5)
    c = d.completeness
    assert (c["accepted"], c["answered"], c["missing"], c["dead_lettered"]) == (3, 2, 1, 1)
    assert c["duplicate_answers"] == 1 and not c["exactly_once"]
    assert c["missing_examples"] == ["e3"] and c["model_versions"] == {"scorer:1": 2}
    assert d.latency_ms["end_to_end"]["p50"] == 500.0
    assert d.latency_ms["end_to_end"]["p99"] == 2000.0
    assert d.latency_ms["in_worker"]["max"] == 6.0
    assert d.throughput["clicks_per_s"] == 1.0  # 2 answers over 2 s
    assert d.throughput["produce_clicks_per_s"] == 8.0


def test_catalog_is_ready_when_every_item_is_taken_embedded_and_none_pending() -> None:
    page = {"items": 10, "catalog_items": 8, "embedded_items": 8, "items_pending_embedding": 0}
    assert catalog_ready([page], processed_at_least=10, distinct=8)
    assert not catalog_ready([page], processed_at_least=11, distinct=8)
    assert not catalog_ready([{**page, "embedded_items": 7}], 10, 8)
    assert not catalog_ready([{**page, "items_pending_embedding": 1}], 10, 8)


def test_progress_prints_plain_lines_without_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    out = io.StringIO()
    bar = Progress("sent", 3, "click", stream=out, every_s=0.0)
    bar.update(2)
    bar.close()
    assert out.getvalue().splitlines() == ["sent: 2/3 click", "sent: 2/3 click"]


def test_measure_gives_the_series_the_plots_draw() -> None:
    joiner = Joiner(["e1", "e2", "e3"])
    for event_id, at in (("e1", 10.2), ("e2", 11.5), ("e3", 11.9)):
        joiner.add_recommendation(rec(event_id), received_at=at)
    sent_at = {"e1": 10.0, "e2": 10.1, "e3": 10.2}
    d = measure(joiner, sent_at, clicks_started=10.0, clicks_flushed=10.2)
    rates = d.series["throughput"]
    assert rates["bin_s"] == 1.0 and rates["t_s"] == [0.0, 1.0]
    assert rates["produced_per_s"] == [3.0, 0.0] and rates["answered_per_s"] == [1.0, 2.0]
    hist = d.series["latency_histogram_ms"]["end_to_end"]
    assert sum(hist["counts"]) == 3 and hist["edges"][0] == 200.0
    assert d.started == 10.0


def test_latency_histogram_bins_logarithmically_and_keeps_every_value() -> None:
    values = [1.0, 10.0, 100.0, 1000.0, 0.2]
    hist = latency_histogram(values, bins=3)
    assert len(hist["edges"]) == 4 and hist["edges"][0] == 1.0
    assert hist["edges"][1] == pytest.approx(10.0, rel=1e-3)
    assert sum(hist["counts"]) == len(values)  # below 1 ms counts in the first bin
    assert latency_histogram([]) == {"edges": [], "counts": []}


def test_throughput_bins_stay_few_on_long_replays() -> None:
    assert bin_seconds(30) == 1.0 and bin_seconds(301) == 2.0 and bin_seconds(2000) == 10.0
    series = throughput_series([0.0, 0.5], [3.5], start=0.0, bin_s=2.0)
    assert series["t_s"] == [0.0, 2.0] and series["answered_per_s"] == [0.0, 0.5]
