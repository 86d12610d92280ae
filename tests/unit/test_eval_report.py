"""The report: standard JSON, Markdown tables that say where the system loses, PNG plots."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from services.eval.plots import write_plots
from services.eval.report import markdown, write

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; fails on anything that is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", path
    assert data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"), f"{path} is truncated"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def figures(hr: float, withheld: float, cpu: float | None = None) -> dict[str, Any]:
    sub = {"hr@10": withheld, "ndcg@10": withheld / 2, "mrr@10": withheld / 3, "pairs": 4}
    return {
        "hr@10": hr,
        "ndcg@10": hr / 2,
        "mrr@10": hr / 3,
        "k": 10,
        "pairs": 5,
        "answered": 5,
        "hits": 1,
        "covered": 2,
        "coverage": 2 / 3,
        "intra_list_diversity": 0.5,
        "warm": {**sub, "hr@10": hr},
        "withheld": sub,
        "withheld_first_click": {**sub, "pairs": 1},
    }


def runtime(clicks_per_s: float, cpu: float) -> dict[str, Any]:
    nan = float("nan")
    latency = {"p50": 10.0, "p95": 20.0, "p99": 30.0, "max": 40.0, "mean": 12.0, "count": 10}
    return {
        "retraining": None,
        "completeness": {
            "clicks_sent": 10,
            "dead_lettered": 0,
            "accepted": 10,
            "answered": 10,
            "missing": 0,
            "duplicate_answers": 0,
            "degraded_answers": 0,
            "exactly_once": True,
        },
        "latency_ms": {"end_to_end": latency, "in_worker": {**latency, "max": nan}},
        "throughput": {
            "clicks_per_s": clicks_per_s,
            "first_produce_to_last_answer_s": nan,
            "produce_clicks_per_s": 5.0,
        },
        "cpu": {
            "whole_replay": {"cpu_s_per_1000_clicks": cpu, "seconds": {"worker-0": 1.0}},
            "judged": {"cpu_s_per_1000_clicks": cpu * 1.1},
        },
        "text_embeddings": {"honoured": True, "with_segment": 0, "with_text_reason": 0},
        "durations_s": {"catalog": 1.0},
    }


def sample_report() -> dict[str, Any]:
    models = {
        "system": figures(0.2, 0.05),
        "system_without_text_embeddings": figures(0.18, 0.0),
        "popularity": figures(0.1, 0.0),
        "covisitation_knn": figures(0.25, 0.0),
    }
    verdict = {
        "popularity": {"hr": {"system": 0.2, "baseline": 0.1, "beats": True}},
        "covisitation_knn": {
            "hr": {"system": 0.2, "baseline": 0.25, "beats": False},
            "withheld_hr": {"system": 0.05, "baseline": 0.0, "beats": True},
        },
    }
    without = runtime(250.0, 6.0)
    row = {"hr": 0.2, "withheld_hr": 0.05, "cpu_s_per_1000_clicks": 8.0, "latency_p50_ms": 10}
    throughput = {
        "bin_s": 1.0,
        "t_s": [0.0, 1.0, 2.0],
        "produced_per_s": [10.0, 0.0, 0.0],
        "answered_per_s": [3.0, 5.0, 2.0],
        "cpu_cores": [1.2, 1.8, 0.4],
    }
    hist = {"edges": [1.0, 10.0, 100.0], "counts": [4, 6]}
    stages = {"candidates": {"per_click_ms": 0.9}, "batch_size": {"p50": 64.0}, "workers": 1}
    return {
        "run_id": "eval-1",
        "settings": {"k": 10, "rate": 0.0, "stack_started_here": True, "withhold_fraction": 0.1},
        "stream": {
            "dataset": "toy",
            "clicks": 10,
            "users": 2,
            "items": 3,
            "warmup_clicks": 8,
            "test_clicks": 2,
            "order": "by time",
            "withheld_items": 1,
            "withheld_warmup_clicks": 2,
        },
        "quality": {
            "pairs": 5,
            "subsets": {"warm": 1, "withheld": 4, "withheld_first_click": 1},
            "models": models,
            "goal": {"hr@10": 0.2, "ndcg@10": 0.1, "met": True},
            "verdicts": verdict,
        },
        **runtime(300.0, 8.0),
        "ablation": {
            "variant": "system_without_text_embeddings",
            "setting": "STREAMREC_TEXT_EMBEDDINGS=false",
            "with_text_embeddings": row,
            "without_text_embeddings": {**row, "hr": 0.18, "withheld_hr": 0.0, "latency_p50_ms": 8},
            **without,
        },
        "stages": {"system": stages, "system_without_text_embeddings": stages},
        "series": {
            "hit_rate": {
                "window": 2,
                "x": [2, 3, 4],
                "models": {m: [0.1, 0.2, 0.3] for m in models},
            },
            "latency_histogram_ms": {
                "system": {"end_to_end": hist, "in_worker": hist},
                "system_without_text_embeddings": {"end_to_end": hist, "in_worker": hist},
            },
            "throughput": {"system": throughput, "system_without_text_embeddings": throughput},
        },
    }


def test_report_writes_standard_json_plots_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "out"
    json_path, md_path = write(sample_report(), out)
    data = json.loads(json_path.read_text())
    assert data["throughput"]["first_produce_to_last_answer_s"] is None  # NaN written as null
    text = md_path.read_text()
    assert text == markdown(data, {name: out / f"{name}.png" for name in PLOTS})
    for name in PLOTS:
        width, height = png_size(out / f"{name}.png")
        assert width > 300 and height > 200
        assert f"]({name}.png)" in text
    assert "| system | 0.2000 | 0.1000 | 0.0667 | 0.2000 | 0.0500 | 0.0500 | 66.7% (2) |" in text
    # Said plainly where the system loses, and where it wins.
    assert "**Does not beat covisitation knn** on HR@10 (0.2000 vs 0.2500)" in text
    assert "beats it on withheld-item HR@10 (0.0500 vs 0.0000)" in text
    assert "**Beats popularity** on every figure" in text
    # The ablation side by side, with the difference.
    assert "| HR@10 | 0.2000 | 0.1800 | +0.0200 |" in text
    assert "| CPU-s per 1,000 clicks (whole click replay) | 8.00 | 8.00 | 0.00 |" in text
    assert "| candidates | 0.900 | 0.900 |" in text
    assert "the system gets HR@10 +0.0200 (+11.1%)" in text


def test_an_ablation_whose_workers_kept_text_embeddings_is_marked_invalid() -> None:
    report = sample_report()
    report["ablation"]["text_embeddings"] = {"honoured": False, "with_segment": 7}
    assert "INVALID: the second stack's workers did not turn text embeddings off" in markdown(
        report
    )


def test_plots_are_left_out_where_there_is_no_data(tmp_path: Path) -> None:
    report = sample_report()
    report["series"] = {"hit_rate": report["series"]["hit_rate"]}
    report["stages"] = {}
    drawn = write_plots(report, tmp_path)
    assert set(drawn) == {"hit_rate"} and png_size(drawn["hit_rate"])[0] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["hit_rate.png"]


PLOTS = ("hit_rate", "latency", "stages", "throughput")
