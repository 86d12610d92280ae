"""The quality replay through the real stack: every click answered exactly once, judged
(warm and withheld items, diversity, the baselines), costed, written up and plotted; and
the ablation's second stack, whose workers rank without the items' text embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.data import synthetic
from services.eval import system
from services.eval.app import run
from services.eval.settings import EvalSettings
from services.eval.stream import ReplayStream
from tests.support.infra import free_ports

pytestmark = pytest.mark.integration

MODELS = ("system", "popularity", "covisitation_knn", "biased_mf")


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
    # 10% of the items withheld from the warm-up: their warm-up clicks are not sent.
    withheld_clicks = result["stream"]["withheld_warmup_clicks"]
    assert result["stream"]["withheld_items"] == 15 and withheld_clicks > 0
    assert c["clicks_sent"] == 2000 - withheld_clicks and c["dead_lettered"] == 0
    assert c["answered"] == c["clicks_sent"] and c["missing"] == 0, c["missing_examples"]
    assert c["duplicate_answers"] == 0 and c["exactly_once"]
    quality = result["quality"]
    assert quality["pairs"] > 100 and quality["subsets"]["withheld"] > 0
    assert list(quality["models"]) == list(MODELS)
    for name in MODELS:
        q = quality["models"][name]
        assert q["answered"] == q["pairs"] == quality["pairs"]
        assert 0.0 <= q["mrr@10"] <= q["ndcg@10"] <= q["hr@10"] <= 1.0
        assert q["withheld"]["pairs"] == quality["subsets"]["withheld"]
        assert 0.0 < q["intra_list_diversity"] <= 2.0 and 0.0 < q["coverage"] <= 1.0
    assert set(quality["verdicts"]) == {"popularity", "covisitation_knn", "biased_mf"}
    # Text embeddings on: every answer carries its user's segment.
    check = result["text_embeddings"]
    assert check["text_embeddings"] and check["with_segment"] == c["answered"]
    latency = result["latency_ms"]["end_to_end"]
    assert latency["count"] == c["answered"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert result["throughput"]["clicks_per_s"] > 0
    cpu = result["cpu"]["whole_replay"]
    assert cpu["cpu_s_per_1000_clicks"] > 0 and cpu["seconds"]["tritonserver"] > 0
    assert "candidates" in result["stages"]["system"]
    assert result["ablation"] is None
    saved = json.loads((out / "report.json").read_text())
    assert saved["run_id"] == result["run_id"]
    text = (out / "report.md").read_text()
    assert "| system |" in text and "biased mf" in text
    for plot in ("hit_rate", "latency", "stages", "throughput"):
        assert (out / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def fresh_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Settings for a stack of this test's own (ports, run folder, feature store)."""
    from services.stack.settings import StackSettings

    ports = free_ports(6)
    run_dir = tmp_path / "stack"
    monkeypatch.setenv("STREAMREC_FEAST_DATA_DIR", str(run_dir / "feast"))
    fields = {
        "broker_port": ports[0],
        "triton_http_port": ports[1],
        "triton_grpc_port": ports[2],
        "triton_metrics_port": ports[3],
        "worker_web_port": ports[4],
        "trainer_port": ports[5],
        "run_dir": run_dir,
        "topic_partitions": 4,
        "trainer": False,
    }
    if "dashboard" in StackSettings.model_fields:
        fields["dashboard"] = False
    return StackSettings(**fields)


def test_the_ablations_stack_ranks_without_text_embeddings(fresh_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from services.stack.control import supervisor_pid

    ds = synthetic.generate(n_users=60, n_items=120, n_clicks=1200, seed=12)
    stream = ReplayStream.build("synthetic", ds.items, ds.clicks).for_run("no-text")
    settings = EvalSettings(
        dataset="synthetic",
        ablation=True,
        start_stack=True,
        progress=False,
        catalog_timeout_s=120,
        idle_timeout_s=30,
        settle_s=2,
    )

    done = system.run_system(settings, fresh_stack, stream, "system_without_text_embeddings", print)

    assert supervisor_pid(fresh_stack) is None  # stopped again
    check = system.switch_check(done)
    assert check["answers"] == 1200, "every click answered"
    # The workers read STREAMREC_TEXT_EMBEDDINGS=false: no segments, no text reasons.
    assert check == {
        "text_embeddings": False,
        "answers": 1200,
        "with_segment": 0,
        "with_text_reason": 0,
        "honoured": True,
    }
    cpu = system.cpu_figures(done, stream)
    assert cpu is not None and cpu["whole_replay"]["cpu_s_per_1000_clicks"] > 0
    assert done.stages is not None and "candidates" in done.stages
