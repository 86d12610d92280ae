"""Joining answers to clicks, completeness, percentiles, the catalog wait and the report."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import pytest

from services.contract import codec
from services.eval.collector import Joiner
from services.eval.delivery import measure, percentile, summarize
from services.eval.progress import Progress
from services.eval.report import markdown, write
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


def sample_report() -> dict[str, object]:
    quality = {"hr@10": 0.2, "ndcg@10": 0.1, "k": 10, "pairs": 5, "answered": 5, "hits": 1}
    nan = float("nan")
    empty = {"p50": nan, "p95": nan, "p99": nan, "max": nan, "mean": nan, "count": 0}
    return {
        "run_id": "eval-1",
        "settings": {"k": 10, "rate": 0.0, "stack_started_here": True},
        "stream": {
            "dataset": "toy",
            "clicks": 10,
            "users": 2,
            "items": 3,
            "warmup_clicks": 8,
            "test_clicks": 2,
            "order": "by time",
        },
        "quality": {
            "pairs": 5,
            "models": {"system": quality, "popularity": quality},
            "goal": {"hr@10": 0.2, "ndcg@10": 0.1, "met": True},
        },
        "completeness": {
            "clicks_sent": 10,
            "dead_lettered": 0,
            "accepted": 10,
            "answered": 10,
            "missing": 0,
            "duplicate_answers": 0,
            "degraded_answers": 0,
        },
        "latency_ms": {"end_to_end": empty, "in_worker": empty},
        "throughput": {
            "clicks_per_s": nan,
            "first_produce_to_last_answer_s": nan,
            "produce_clicks_per_s": 5.0,
        },
    }


def test_report_writes_standard_json_and_a_markdown_table(tmp_path: Path) -> None:
    json_path, md_path = write(sample_report(), tmp_path / "out")
    data = json.loads(json_path.read_text())
    assert data["throughput"]["clicks_per_s"] is None  # NaN written as null
    text = md_path.read_text()
    assert "| system | 0.2000 | 0.1000 | 5 / 5 |" in text
    assert "meets the goal" in text and "flat out" in text
    assert text == markdown(data)
