"""One replay's orchestration without a stack: the variants' answers judged beside the
baselines, the ablation side by side, the report and its plots written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from services.data import synthetic
from services.eval import app, system
from services.eval.__main__ import _sound, main
from services.eval.baselines import CoVisitationKNN, OnlineRecommender, Popularity, replay
from services.eval.collector import Joiner
from services.eval.replayer import ReplayTimes
from services.eval.settings import EvalSettings
from services.eval.stream import ReplayStream
from services.recommender.embeddings import EmbeddingIndex
from services.stack.settings import StackSettings


def stream() -> ReplayStream:
    ds = synthetic.generate(n_users=40, n_items=60, n_clicks=900, seed=5)
    return ReplayStream.build("synthetic", ds.items, ds.clicks)


def fake_system(models: dict[str, OnlineRecommender], segments: bool = False) -> Any:
    """A stand-in for the stack: each variant answers as the given in-process model."""

    def run_system(
        settings: EvalSettings, stack: StackSettings, s: ReplayStream, variant: str, echo: Any
    ) -> system.SystemRun:
        text = system.VARIANTS[variant]
        answers = replay(models[variant], s.clicks, {c.event_id for c in s.clicks}, k=10)
        joiner, times = Joiner(c.event_id for c in s.clicks), ReplayTimes()
        times.clicks_started = times.catalog_ready = 100.0
        for n, click in enumerate(s.clicks):
            times.sent_at[click.event_id] = 100.0 + n / 1000
            body = {
                "event_id": click.event_id,
                "items": [{"item_id": i, "reasons": []} for i in answers[click.event_id]],
                "segment": 3 if text or segments else None,
                "latency_ms": 4.0,
            }
            joiner.add_recommendation(json.dumps(body).encode(), 100.05 + n / 1000)
        times.clicks_flushed = 101.0
        stages = {"candidates": {"per_click_ms": 0.5 if text else 0.3}}
        return system.SystemRun(variant, text, joiner, times, None, None, stages, True)

    return run_system


@pytest.fixture
def no_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    def vectors(s: ReplayStream, settings: EvalSettings, echo: Any) -> EmbeddingIndex:
        rng = np.random.default_rng(0)
        index = EmbeddingIndex(dim=8)
        for item in s.items:
            index.upsert(item.item_id, rng.normal(size=8))
        return index

    monkeypatch.setattr(app, "_judge_vectors", vectors)


def run_ablation(tmp_path: Path, segments: bool = False) -> dict[str, Any]:
    settings = EvalSettings(
        dataset="synthetic", ablation=True, start_stack=True, out_dir=tmp_path, progress=False
    )
    result, _ = app.run(settings, StackSettings(), echo=lambda _: None, stream=stream())
    return result


def test_the_ablation_reports_both_variants_beside_the_baselines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_encoder: None
) -> None:
    variants = {"system": CoVisitationKNN(), "system_without_text_embeddings": Popularity()}
    monkeypatch.setattr(system, "run_system", fake_system(variants))
    result = run_ablation(tmp_path)

    models = result["quality"]["models"]
    assert list(models) == [
        "system",
        "system_without_text_embeddings",
        "popularity",
        "covisitation_knn",
        "biased_mf",
    ]
    # Each variant is judged exactly as the baseline it imitates.
    assert models["system"] == models["covisitation_knn"]
    assert models["system_without_text_embeddings"] == models["popularity"]
    assert models["system"]["withheld"]["pairs"] == result["quality"]["subsets"]["withheld"] > 0
    # A tie is reported as not beating the baseline.
    assert result["quality"]["verdicts"]["covisitation_knn"]["hr"]["beats"] is False
    assert result["quality"]["verdicts"]["popularity"]["hr"]["beats"] is True

    ablation = result["ablation"]
    assert ablation["setting"] == "STREAMREC_TEXT_EMBEDDINGS=false"
    on, off = ablation["with_text_embeddings"], ablation["without_text_embeddings"]
    assert on["hr"] == models["system"]["hr@10"]
    assert off["hr"] == models["system_without_text_embeddings"]["hr@10"]
    assert off["withheld_hr"] == models["popularity"]["withheld"]["hr@10"]
    assert ablation["text_embeddings"]["honoured"] and ablation["completeness"]["exactly_once"]
    assert _sound(result)
    assert set(result["stages"]) == {"system", "system_without_text_embeddings"}
    assert set(result["series"]["hit_rate"]["models"]) == set(models)

    text = (tmp_path / "report.md").read_text()
    assert "## What the language-model item embeddings buy (ablation)" in text
    assert "**Does not beat covisitation knn**" in text
    for plot in ("hit_rate", "latency", "stages", "throughput"):
        assert (tmp_path / f"{plot}.png").stat().st_size > 0


def test_an_ablation_whose_workers_ignored_the_switch_is_not_sound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_encoder: None
) -> None:
    variants = {"system": Popularity(), "system_without_text_embeddings": Popularity()}
    monkeypatch.setattr(system, "run_system", fake_system(variants, segments=True))
    result = run_ablation(tmp_path)
    assert result["ablation"]["text_embeddings"]["honoured"] is False
    assert not _sound(result)
    assert "INVALID" in (tmp_path / "report.md").read_text()


def test_the_ablation_needs_fresh_stacks() -> None:
    with pytest.raises(ValueError, match="--ablation needs --start-stack"):
        app.run(EvalSettings(ablation=True), StackSettings(), stream=stream())
    out = CliRunner().invoke(main, ["--ablation"])
    assert out.exit_code == 2 and "--ablation needs --start-stack" in out.output
