"""One quality replay: the baselines in-process, then the stream through Kafka and the
workers, joined, measured and written up."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.eval import baselines, delivery, protocol, report
from services.eval.collector import Answer, Joiner, KafkaCollector
from services.eval.progress import Progress
from services.eval.replayer import Replayer, ReplayTimes
from services.eval.settings import EvalSettings
from services.eval.stream import ReplayStream, load_stream
from services.eval.workers import WorkerProbe
from services.kafka.settings import KafkaSettings
from services.stack.settings import StackSettings

log = logging.getLogger(__name__)


def new_run_id() -> str:
    return f"eval-{uuid.uuid4().hex[:8]}"


def baseline_quality(
    stream: ReplayStream, pairs: list[protocol.Pair], k: int
) -> tuple[dict[str, protocol.Quality], float]:
    """Each baseline replayed on the stream; returns their quality and the seconds taken."""
    started = time.monotonic()
    wanted = {p.event_id for p in pairs}
    out = {}
    for model in baselines.default_baselines():
        answers = baselines.replay(model, stream.clicks, wanted, k)
        out[model.name] = protocol.score(pairs, answers, k)
    return out, time.monotonic() - started


def _code_version() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=False, cwd=Path(__file__).parent
        ).stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


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
    run_id = run_id or new_run_id()
    if stream is None:
        echo(f"loading {settings.dataset}")
        stream = load_stream(
            settings.dataset,
            warmup_fraction=settings.warmup_fraction,
            limit=settings.limit,
            seed=settings.seed,
        )
    stream = stream.for_run(run_id)
    pairs = protocol.consecutive_pairs(stream.clicks, stream.split)
    echo(
        f"{len(stream.clicks)} clicks, {len(stream.items)} items; {len(pairs)} test pairs; "
        "scoring the baselines in-process"
    )
    # Before the stack starts, so they do not compete with it for the CPU.
    base, base_s = baseline_quality(stream, pairs, settings.k)
    for name, q in base.items():
        echo(f"  {name}: HR@{q.k} {q.hr:.4f}  NDCG@{q.k} {q.ndcg:.4f}")

    out = settings.report_dir(run_id)
    stack, initial_model = _prepare_models(settings, stack, stream, out, echo)
    retrain = None
    if settings.retrain_after_warmup:
        base_url = f"http://{stack.host}:{stack.trainer_port}"
        retrain = lambda: _retrain(base_url, settings.retrain_timeout_s, echo)  # noqa: E731

    started_here = False
    if settings.start_stack:
        from services.stack.control import up_detached

        echo("starting the embedded stack")
        with _trainer_on_demand_only(settings.retrain_after_warmup):
            up_detached(stack)
        started_here = True
    try:
        joiner, times, retraining = _replay(settings, stack, stream, echo, retrain)
    finally:
        if started_here:
            from services.stack.control import down

            echo("stopping the embedded stack")
            down(stack)

    answers = {e: a.items for e, a in joiner.answers.items()}
    system = protocol.score(pairs, answers, settings.k)
    measured = delivery.measure(joiner, times.sent_at, times.clicks_started, times.clicks_flushed)
    k = settings.k
    result: dict[str, Any] = {
        "run_id": run_id,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": _code_version(),
        "settings": {
            "rate": settings.rate,
            "limit": settings.limit,
            "k": k,
            "warmup_fraction": settings.warmup_fraction,
            "bootstrap": _bootstrap(settings, stack),
            "stack_started_here": started_here,
            "initial_model": initial_model,
            "retrain_after_warmup": settings.retrain_after_warmup,
            "model_repository": str(stack.model_repository),
            # Compared with the field's default, not StackSettings(): that reads the
            # environment, where STREAMREC_MODEL_REPOSITORY may point elsewhere.
            "default_model_repository": Path(stack.model_repository).resolve()
            == Path(StackSettings.model_fields["model_repository"].default).resolve(),
        },
        "stream": stream.summary(),
        "quality": {
            "pairs": len(pairs),
            "models": {"system": system.as_dict(), **{n: q.as_dict() for n, q in base.items()}},
            # Which scorer version answered each judged click: after a retraining, the
            # judged clicks are answered by the new version (or, if it was kept, the old).
            "by_model_version": {
                v: q.as_dict() for v, q in by_version(pairs, joiner.answers, k).items()
            },
            "goal": {
                f"hr@{k}": settings.goal_hr,
                f"ndcg@{k}": settings.goal_ndcg,
                "met": system.hr >= settings.goal_hr and system.ndcg >= settings.goal_ndcg,
            },
        },
        "retraining": retraining,
        "completeness": measured.completeness,
        "latency_ms": measured.latency_ms,
        "throughput": _throughput(measured.throughput, measured.completeness, times.paused_s),
        "durations_s": {
            "baselines": round(base_s, 1),
            "catalog": round(times.catalog_ready - times.catalog_started, 1),
            "produce_clicks": round(times.clicks_flushed - times.clicks_started, 1),
        },
    }
    json_path, md_path = report.write(result, out)
    echo(f"report: {json_path} and {md_path}")
    return result, out


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


@contextlib.contextmanager
def _trainer_on_demand_only(active: bool) -> Iterator[None]:
    """While the stack starts: its trainer retrains only when asked (no timer, no click
    count, no drift), so the replay decides when the one retraining happens; and with no
    shadow trial, as the replay sends no clicks while it waits for the decision."""
    if not active:
        yield
        return
    names = {
        "STREAMREC_TRAINER_INTERVAL_S": "0",
        "STREAMREC_TRAINER_EVERY_CLICKS": "0",
        "STREAMREC_TRAINER_DRIFT": "false",
        "STREAMREC_TRAINER_SHADOW_S": "0",
    }
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _retrain(base_url: str, timeout_s: float, echo: Callable[[str], None]) -> dict[str, Any]:
    import httpx

    from services.trainer.client import request_training, wait_for_job

    job = request_training(base_url)
    echo(f"warm-up answered; the trainer retrains (job {job}; minutes)")
    try:
        done = wait_for_job(base_url, job, timeout_s)
    except (httpx.HTTPError, TimeoutError) as exc:
        raise RuntimeError(f"waiting for retraining job {job} failed: {exc}") from exc
    echo(
        f"retraining {done.get('state')}: {done.get('decision')} "
        f"(version {done.get('version')}; {done.get('reason')})"
    )
    if done.get("state") != "done":
        raise RuntimeError(f"the retraining did not run: {done.get('reason')}")
    return done


def _bootstrap(settings: EvalSettings, stack: StackSettings) -> str:
    return settings.bootstrap or stack.bootstrap


def _worker_urls(settings: EvalSettings, stack: StackSettings) -> list[str]:
    if settings.worker_urls:
        return list(settings.worker_urls)
    return [
        f"http://{stack.host}:{stack.worker_web_port + i}/healthz" for i in range(stack.workers)
    ]


def _replay(
    settings: EvalSettings,
    stack: StackSettings,
    stream: ReplayStream,
    echo: Callable[[str], None],
    retrain: Callable[[], dict[str, Any]] | None = None,
) -> tuple[Joiner, ReplayTimes, dict[str, Any] | None]:
    # Explicit bootstrap over the environment's; security settings still come from it.
    kafka = KafkaSettings(bootstrap=_bootstrap(settings, stack))
    probe = WorkerProbe(_worker_urls(settings, stack)) if settings.wait_catalog else None
    replayer = Replayer(
        kafka, probe, rate=settings.rate, catalog_timeout_s=settings.catalog_timeout_s
    )
    times = ReplayTimes()
    echo(f"sending the catalog ({len(stream.items)} items) and waiting for the workers")
    replayer.send_catalog(stream, times)
    echo(f"catalog in after {times.catalog_ready - times.catalog_started:.1f}s")

    joiner = Joiner(c.event_id for c in stream.clicks)
    n = len(stream.clicks)
    sent_bar = Progress("clicks sent", n, "click", enabled=settings.progress, position=0)
    got_bar = Progress("answers received", n, "rec", enabled=settings.progress, position=1)
    collector = KafkaCollector(kafka, joiner, on_answer=got_bar.update)
    retraining = None
    # Positioned at the topics' ends before the first click goes out.
    collector.start()
    try:
        if retrain is not None:
            # The warm-up first, answered in full, so the trainer's log holds all of it;
            # the judged clicks go out once the retraining has decided.
            replayer.send_clicks(stream, times, sent_bar.update, part=slice(None, stream.split))
            if not collector.wait(
                idle_s=settings.idle_timeout_s,
                settle_s=0.0,
                since=times.clicks_flushed,
                settled=stream.split,
            ):
                raise RuntimeError(
                    f"only {joiner.settled} of the {stream.split} warm-up clicks were answered"
                )
            paused_at = time.monotonic()
            retraining = retrain()
            times.paused_s = time.monotonic() - paused_at
            replayer.send_clicks(stream, times, sent_bar.update, part=slice(stream.split, None))
        else:
            replayer.send_clicks(stream, times, on_sent=sent_bar.update)
        sent_bar.close()
        complete = collector.wait(
            idle_s=settings.idle_timeout_s, settle_s=settings.settle_s, since=times.clicks_flushed
        )
    finally:
        collector.stop()
        got_bar.close()
    if not complete:
        echo(
            f"stopped waiting: {joiner.settled} of {n} clicks have an outcome and nothing came "
            f"for {settings.idle_timeout_s:.0f}s"
        )
    return joiner, times, retraining
