"""One quality replay: the baselines in-process, then the stream through Kafka and the
workers (twice with ``--ablation``: with and without the items' text embeddings), joined,
measured and written up."""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.eval import baselines, delivery, judge, protocol, report, system
from services.eval.collector import Answer
from services.eval.settings import EvalSettings
from services.eval.stream import ReplayStream, load_stream
from services.recommender.embeddings import EmbeddingIndex
from services.stack.settings import StackSettings

log = logging.getLogger(__name__)

SYSTEM = "system"
WITHOUT_TEXT = "system_without_text_embeddings"


def new_run_id() -> str:
    return f"eval-{uuid.uuid4().hex[:8]}"


def baseline_answers(
    stream: ReplayStream, pairs: list[protocol.Pair], k: int
) -> tuple[dict[str, dict[str, list[str]]], float]:
    """Each baseline replayed on the stream: its answers to the judged clicks, and the
    seconds all took."""
    started = time.monotonic()
    wanted = {p.event_id for p in pairs}
    out = {}
    for model in baselines.default_baselines():
        out[model.name] = dict(baselines.replay(model, stream.clicks, wanted, k))
    return out, time.monotonic() - started


def baseline_quality(
    stream: ReplayStream, pairs: list[protocol.Pair], k: int
) -> tuple[dict[str, protocol.Quality], float]:
    """Each baseline replayed on the stream; returns their quality and the seconds taken."""
    answers, seconds = baseline_answers(stream, pairs, k)
    return {name: protocol.score(pairs, a, k) for name, a in answers.items()}, seconds


def _code_version() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=False, cwd=Path(__file__).parent
        ).stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def _judge_vectors(
    stream: ReplayStream, settings: EvalSettings, echo: Callable[[str], None]
) -> EmbeddingIndex | None:
    """The catalog's MiniLM vectors that intra-list diversity is judged by (None: left out)."""
    from services.eval.item_vectors import item_embeddings

    try:
        return item_embeddings(stream, progress=settings.progress)
    except Exception as exc:  # the encoder's weights or torch missing: judge without ILD
        echo(f"intra-list diversity left out: the item encoder did not load ({exc})")
        return None


def run(
    settings: EvalSettings,
    stack: StackSettings,
    echo: Callable[[str], None] = print,
    stream: ReplayStream | None = None,
    run_id: str | None = None,
) -> tuple[dict[str, Any], Path]:
    """Replay, measure and write the report; returns it and its directory.

    ``stream`` replaces the named data set (tests pass a small one).
    """
    if settings.ablation and not settings.start_stack:
        raise ValueError("--ablation needs --start-stack: each variant needs a fresh stack")
    run_id = run_id or new_run_id()
    if stream is None:
        echo(f"loading {settings.dataset}")
        stream = load_stream(
            settings.dataset,
            warmup_fraction=settings.warmup_fraction,
            limit=settings.limit,
            seed=settings.seed,
        )
    if settings.withhold_fraction and not stream.withheld:
        stream = stream.withhold(settings.withhold_fraction, settings.seed)
    stream = stream.for_run(run_id)
    k = settings.k
    pairs = protocol.consecutive_pairs(stream.clicks, stream.split)
    subsets = judge.split_pairs(pairs, stream.clicks, stream.withheld)
    echo(
        f"{len(stream.clicks)} clicks, {len(stream.items)} items ({len(stream.withheld)} "
        f"withheld from the warm-up, {stream.withheld_warmup_clicks} of its clicks left out); "
        f"{len(pairs)} test pairs, {len(subsets.withheld)} on withheld items; "
        "scoring the baselines in-process"
    )
    # Before the stack starts, so they do not compete with it for the CPU.
    vectors = _judge_vectors(stream, settings, echo)
    base, base_s = baseline_answers(stream, pairs, k)
    models: dict[str, dict[str, Any]] = {}
    ranks: dict[str, list[int]] = {}
    catalog = {item.item_id for item in stream.items}

    def add(name: str, answers: Mapping[str, list[str]]) -> None:
        models[name] = judge.judge(pairs, answers, k, catalog, subsets, vectors)
        ranks[name] = protocol.ranks(pairs, answers, k)

    for name, answers in base.items():
        add(name, answers)
        q = models[name]
        echo(f"  {name}: HR@{k} {q[f'hr@{k}']:.4f}  NDCG@{k} {q[f'ndcg@{k}']:.4f}")

    out = settings.report_dir(run_id)
    stack, initial_model = _prepare_models(settings, stack, stream, out, echo)
    variants = [SYSTEM, WITHOUT_TEXT] if settings.ablation else [SYSTEM]
    stacks = {name: _variant_stack(settings, stack, out, name) for name in variants}
    runs = {}
    for name in variants:
        runs[name] = system.run_system(settings, stacks[name], stream, name, echo)
        add(name, {e: a.items for e, a in runs[name].joiner.answers.items()})
    # The system first, the baselines after it, as the tables and plots read.
    models = {name: models[name] for name in [*variants, *base]}
    ranks = {name: ranks[name] for name in models}

    runtime = {name: _runtime(run, stream, k) for name, run in runs.items()}
    main = runtime[SYSTEM]
    result: dict[str, Any] = {
        "run_id": run_id,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": _code_version(),
        "settings": {
            "rate": settings.rate,
            "limit": settings.limit,
            "k": k,
            "warmup_fraction": settings.warmup_fraction,
            "withhold_fraction": settings.withhold_fraction,
            "seed": settings.seed,
            "bootstrap": system.bootstrap(settings, stack),
            "stack_started_here": runs[SYSTEM].started_here,
            "initial_model": initial_model,
            "retrain_after_warmup": settings.retrain_after_warmup,
            "ablation": settings.ablation,
            "model_repository": str(stack.model_repository),
            # Compared with the field's default, not StackSettings(): that reads the
            # environment, where STREAMREC_MODEL_REPOSITORY may point elsewhere.
            "default_model_repository": Path(stack.model_repository).resolve()
            == Path(StackSettings.model_fields["model_repository"].default).resolve(),
        },
        "stream": stream.summary(),
        "quality": {
            "pairs": len(pairs),
            "subsets": subsets.sizes(),
            "models": models,
            # Which scorer version answered each judged click: after a retraining, the
            # judged clicks are answered by the new version (or, if it was kept, the old).
            "by_model_version": main.pop("by_model_version"),
            "goal": {
                f"hr@{k}": settings.goal_hr,
                f"ndcg@{k}": settings.goal_ndcg,
                "met": models[SYSTEM][f"hr@{k}"] >= settings.goal_hr
                and models[SYSTEM][f"ndcg@{k}"] >= settings.goal_ndcg,
            },
            "verdicts": judge.verdicts(models, SYSTEM, list(base), k),
        },
        **{key: value for key, value in main.items() if key not in ("stages", "series")},
        "ablation": _ablation(models, runtime, k) if settings.ablation else None,
        "stages": {name: r["stages"] for name, r in runtime.items() if r["stages"]},
        "series": {
            "hit_rate": judge.rolling_hit_rate(ranks),
            "latency_histogram_ms": {
                name: r["series"]["latency_histogram_ms"] for name, r in runtime.items()
            },
            "throughput": {
                name: r["series"]["throughput"]
                for name, r in runtime.items()
                if "throughput" in r["series"]
            },
        },
    }
    result["durations_s"]["baselines"] = round(base_s, 1)
    json_path, md_path = report.write(result, out)
    echo(f"report: {json_path} and {md_path} (and the plots beside them)")
    return result, out


def _runtime(run: system.SystemRun, stream: ReplayStream, k: int) -> dict[str, Any]:
    """One variant's delivery, cost and stage figures, as the report stores them."""
    times = run.times
    measured = delivery.measure(
        run.joiner, times.sent_at, times.clicks_started, times.clicks_flushed
    )
    series = dict(measured.series)
    if "throughput" in series:
        rates = series["throughput"]
        cores = system.cpu_cores(run, measured.started, rates["bin_s"], len(rates["t_s"]))
        if cores is not None:
            series["throughput"] = {**rates, "cpu_cores": cores}
    return {
        "retraining": run.retraining,
        "completeness": measured.completeness,
        "latency_ms": measured.latency_ms,
        "throughput": _throughput(measured.throughput, measured.completeness, times.paused_s),
        "cpu": system.cpu_figures(run, stream),
        "text_embeddings": system.switch_check(run),
        "durations_s": {
            "catalog": round(times.catalog_ready - times.catalog_started, 1),
            "produce_clicks": round(times.clicks_flushed - times.clicks_started, 1),
        },
        "by_model_version": {
            v: q.as_dict()
            for v, q in by_version(
                protocol.consecutive_pairs(stream.clicks, stream.split), run.joiner.answers, k
            ).items()
        },
        "stages": run.stages,
        "series": series,
    }


def _ablation(
    models: Mapping[str, Mapping[str, Any]], runtime: Mapping[str, Mapping[str, Any]], k: int
) -> dict[str, Any]:
    """The system with and without the items' text embeddings, side by side."""

    def row(name: str) -> dict[str, Any]:
        q, r = models[name], runtime[name]
        cpu = r["cpu"] or {}
        latency = r["latency_ms"]["end_to_end"]
        return {
            **{fig: judge.figure(q, fig, k) for fig in judge.COMPARED},
            "withheld_first_click_hr": (q.get("withheld_first_click") or {}).get(f"hr@{k}"),
            "cpu_s_per_1000_clicks": (cpu.get("whole_replay") or {}).get("cpu_s_per_1000_clicks"),
            "cpu_s_per_1000_judged_clicks": (cpu.get("judged") or {}).get("cpu_s_per_1000_clicks"),
            "clicks_per_s": r["throughput"].get("clicks_per_s"),
            **{f"latency_{p}_ms": latency.get(p) for p in ("p50", "p95", "p99")},
        }

    other = runtime[WITHOUT_TEXT]
    return {
        "variant": WITHOUT_TEXT,
        "setting": f"{system.TEXT_SETTING}=false",
        "with_text_embeddings": row(SYSTEM),
        "without_text_embeddings": row(WITHOUT_TEXT),
        **{key: value for key, value in other.items() if key not in ("stages", "series")},
    }


def _variant_stack(
    settings: EvalSettings, stack: StackSettings, out: Path, variant: str
) -> StackSettings:
    """With a retraining in each of several variants, each serves its own copy of the
    initial repository: the first's retrained version must not be the second's start."""
    if not (settings.ablation and settings.retrain_after_warmup):
        return stack
    from services.eval import warmup_model

    repository = warmup_model.copy_repository(stack.model_repository, out / variant)
    return stack.model_copy(
        update={"model_repository": repository, "run_dir": out / variant / "stack"}
    )


def _throughput(
    throughput: dict[str, Any], completeness: dict[str, Any], paused_s: float
) -> dict[str, Any]:
    """With a retraining between the parts, the span includes minutes of waiting: the
    rate is also given without them."""
    if not paused_s:
        return throughput
    span = (throughput.get("first_produce_to_last_answer_s") or 0.0) - paused_s
    return {
        **throughput,
        "retraining_pause_s": round(paused_s, 1),
        "clicks_per_s_excluding_pause": round(completeness["answered"] / span, 1)
        if span > 0
        else None,
    }


def by_version(
    pairs: list[protocol.Pair], answers: dict[str, Answer], k: int
) -> dict[str, protocol.Quality]:
    """Quality of the judged pairs grouped by the scorer version that answered them."""
    groups: dict[str, list[protocol.Pair]] = {}
    for pair in pairs:
        answer = answers.get(pair.event_id)
        if answer is not None:
            groups.setdefault(str(answer.model_version), []).append(pair)
    return {
        version: protocol.score(group, {p.event_id: answers[p.event_id].items for p in group}, k)
        for version, group in sorted(groups.items())
    }


def _prepare_models(
    settings: EvalSettings,
    stack: StackSettings,
    stream: ReplayStream,
    out: Path,
    echo: Callable[[str], None],
) -> tuple[StackSettings, str]:
    """The model repository the stack serves: the given one, or a private copy whose
    scorer has not seen the replayed data (and that a retraining may write into)."""
    wanted = [settings.train_on_warmup, settings.initial_synthetic]
    if sum(wanted) > 1:
        raise ValueError("--train-on-warmup and --initial-synthetic exclude each other")
    if (any(wanted) or settings.retrain_after_warmup) and not settings.start_stack:
        raise ValueError(
            "--train-on-warmup, --initial-synthetic and --retrain-after-warmup need "
            "--start-stack (the stack must serve the models they build)"
        )
    from services.eval import warmup_model

    source = stack.model_repository
    initial = "repository"
    if settings.train_on_warmup:
        repository = warmup_model.train_on_warmup(stream, source, out, echo)
        initial = "warmup"
    elif settings.initial_synthetic:
        repository = warmup_model.train_on_synthetic(source, out, echo)
        initial = "synthetic"
    elif settings.retrain_after_warmup:
        repository = warmup_model.copy_repository(source, out)
    else:
        return stack, initial
    update: dict[str, Any] = {"model_repository": repository}
    if settings.retrain_after_warmup:
        # Its own run folder: the trainer's event log must hold this run's clicks only.
        update.update(trainer=True, run_dir=out / "stack")
    return stack.model_copy(update=update), initial
