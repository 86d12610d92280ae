"""The quality replay through the real stack: every click answered exactly once, measured,
written up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.data import synthetic
from services.eval.app import run
from services.eval.settings import EvalSettings
from services.eval.stream import ReplayStream

pytestmark = pytest.mark.integration


def test_replay_of_2000_clicks_is_complete_measured_and_reported(stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = synthetic.generate(n_users=80, n_items=150, n_clicks=2000, seed=11)
    stream = ReplayStream.build("synthetic", ds.items, ds.clicks)
    settings = EvalSettings(
        dataset="synthetic",
        out_dir=tmp_path / "report",
        progress=False,
        catalog_timeout_s=60,
        idle_timeout_s=30,
        settle_s=2,
    )
    lines: list[str] = []

    result, out = run(settings, stack, echo=lines.append, stream=stream)

    c = result["completeness"]
    assert c["clicks_sent"] == 2000 and c["dead_lettered"] == 0
    assert c["answered"] == 2000 and c["missing"] == 0, c["missing_examples"]
    assert c["duplicate_answers"] == 0 and c["exactly_once"]
    quality = result["quality"]
    assert quality["pairs"] > 100
    for name in ("system", "popularity", "covisitation_knn"):
        q = quality["models"][name]
        assert q["answered"] == q["pairs"] == quality["pairs"]
        assert 0.0 <= q["ndcg@10"] <= q["hr@10"] <= 1.0
    latency = result["latency_ms"]["end_to_end"]
    assert latency["count"] == 2000 and 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert result["throughput"]["clicks_per_s"] > 0
    saved = json.loads((out / "report.json").read_text())
    assert saved["run_id"] == result["run_id"]
    assert "| system |" in (out / "report.md").read_text()
