"""The system under test in one replay: a stack started (or found), the stream sent through
it, what it answered and what that cost (CPU time, the workers' stage times)."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from services.eval.collector import Joiner, KafkaCollector
from services.eval.cpu import CpuSampler
from services.eval.progress import Progress
from services.eval.replayer import Replayer, ReplayTimes
from services.eval.settings import EvalSettings
from services.eval.stream import ReplayStream
from services.eval.workers import WorkerProbe
from services.kafka.settings import KafkaSettings
from services.stack.settings import StackSettings

log = logging.getLogger(__name__)

# The worker setting the ablation turns off (services/recommender/settings.py).
TEXT_SETTING = "STREAMREC_TEXT_EMBEDDINGS"
# The system's variants: name -> whether the workers rank with the items' text embeddings.
VARIANTS = {"system": True, "system_without_text_embeddings": False}
# Whose CPU time a click costs: the workers and Triton (with its Python-backend stubs).
CHARGED = ("worker", "tritonserver")


@dataclass
class SystemRun:
    """One variant's replay: the answers joined to the clicks, and how it went."""

    variant: str
    text_embeddings: bool
    joiner: Joiner
    times: ReplayTimes
    retraining: dict[str, Any] | None
    cpu: CpuSampler | None
    stages: dict[str, Any] | None
    started_here: bool


def run_system(
    settings: EvalSettings,
    stack: StackSettings,
    stream: ReplayStream,
    variant: str,
    echo: Callable[[str], None],
) -> SystemRun:
    """Start the stack (if asked) with ``variant``'s worker setting, replay, stop it."""
    text = VARIANTS[variant]
    env: dict[str, str] = {}
    if settings.ablation:
        # Both ways explicitly: the user's own environment must not decide either side.
        env[TEXT_SETTING] = "true" if text else "false"
    else:
        from services.recommender.settings import WorkerSettings

        # As the workers will read it from the environment they inherit.
        text = WorkerSettings().text_embeddings
    retrain = None
    if settings.retrain_after_warmup:
        env.update(TRAINER_ON_DEMAND)
        base_url = f"http://{stack.host}:{stack.trainer_port}"
        retrain = lambda: _retrain(base_url, settings.retrain_timeout_s, echo)  # noqa: E731

    started_here = False
    if settings.start_stack:
        from services.stack.control import up_detached

        echo(f"starting the embedded stack ({variant})")
        with environment(env):
            up_detached(stack)
        started_here = True
    sampler = _sampler(stack)
    try:
        joiner, times, retraining = _replay(settings, stack, stream, echo, retrain)
        stages = _stages(settings, stack)
    finally:
        if sampler is not None:
            sampler.stop()
        if started_here:
            from services.stack.control import down

            echo("stopping the embedded stack")
            down(stack)
    return SystemRun(variant, text, joiner, times, retraining, sampler, stages, started_here)


# While the stack starts with --retrain-after-warmup: its trainer retrains only when asked
# (no timer, no click count, no drift), so the replay decides when the one retraining
# happens; and with no shadow trial, as the replay sends no clicks while it waits.
TRAINER_ON_DEMAND = {
    "STREAMREC_TRAINER_INTERVAL_S": "0",
    "STREAMREC_TRAINER_EVERY_CLICKS": "0",
    "STREAMREC_TRAINER_DRIFT": "false",
    "STREAMREC_TRAINER_SHADOW_S": "0",
}


@contextlib.contextmanager
def environment(names: Mapping[str, str]) -> Iterator[None]:
    """``names`` set in this process's environment (which the stack's components inherit)
    for the duration, then restored."""
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


def _sampler(stack: StackSettings) -> CpuSampler | None:
    """CPU sampling of the stack's components, if this machine runs them (state file)."""
    from services.stack.control import read_state

    components = (read_state(stack) or {}).get("components") or {}
    pids = {name: c["pid"] for name, c in components.items() if c.get("pid")}
    if not pids or not Path("/proc").is_dir():
        return None
    sampler = CpuSampler(pids)
    sampler.start()
    return sampler


def charged(names: Mapping[str, float]) -> float:
    """CPU seconds of the components a click is charged for (:data:`CHARGED`)."""
    return sum(v for name, v in names.items() if name.startswith(CHARGED))


def cpu_figures(run: SystemRun, stream: ReplayStream) -> dict[str, Any] | None:
    """CPU seconds per 1,000 clicks over the click replay and over its judged part."""
    sampler, joiner, times = run.cpu, run.joiner, run.times
    received = sorted(a.received_at for a in joiner.answers.values())
    if sampler is None or not received:
        return None
    end = received[-1]
    whole = sampler.between(times.clicks_started, end)
    pause_end = times.paused_from + times.paused_s
    if times.paused_s:
        # The retraining pause is the trainer's time, not the clicks'.
        for name, spent in sampler.between(times.paused_from, pause_end).items():
            whole[name] = max(0.0, whole[name] - spent)
    # The judged part starts once the warm-up's last answer is in (answers come back
    # nearly in order), or when the judged clicks went out after a retraining.
    judged_from = received[min(len(received), stream.split) - 1] if stream.split else 0.0
    judged_from = max(judged_from, pause_end if times.paused_s else times.clicks_started)
    judged = sampler.between(judged_from, end)

    def per_1000(spent: Mapping[str, float], clicks: int) -> float | None:
        return round(charged(spent) / clicks * 1000.0, 3) if clicks else None

    return {
        "charged": "the workers and tritonserver (with its Python-backend model processes)",
        "whole_replay": {
            "window": "first click produced -> last answer received, less any retraining pause",
            "clicks": len(stream.clicks),
            "seconds": {name: round(v, 2) for name, v in sorted(whole.items())},
            "cpu_s_per_1000_clicks": per_1000(whole, len(stream.clicks)),
        },
        "judged": {
            "window": "warm-up's last answer received -> last answer received",
            "clicks": stream.test_clicks,
            "seconds": {name: round(v, 2) for name, v in sorted(judged.items())},
            "cpu_s_per_1000_clicks": per_1000(judged, stream.test_clicks),
        },
    }


def cpu_cores(run: SystemRun, start: float, bin_s: float, bins: int) -> list[float] | None:
    """Cores the charged components kept busy in each of ``bins`` bins from ``start``."""
    if run.cpu is None:
        return None
    spans = ((start + i * bin_s, start + (i + 1) * bin_s) for i in range(bins))
    return [round(charged(run.cpu.between(a, b)) / bin_s, 3) for a, b in spans]


def switch_check(run: SystemRun) -> dict[str, Any]:
    """Did the workers rank as the variant says? Without text embeddings no answer has a
    user segment (segments come from text vectors) or a text-similarity reason."""
    answers = list(run.joiner.answers.values())
    with_segment = sum(a.segment is not None for a in answers)
    with_text = sum(a.text_reason for a in answers)
    return {
        "text_embeddings": run.text_embeddings,
        "answers": len(answers),
        "with_segment": with_segment,
        "with_text_reason": with_text,
        "honoured": run.text_embeddings or with_segment == with_text == 0,
    }


def _stages(settings: EvalSettings, stack: StackSettings) -> dict[str, Any] | None:
    """The workers' /stages pages, averaged (ms per click over their last batches)."""
    pages = []
    for url in worker_urls(settings, stack):
        stages_url = url.rsplit("/", 1)[0] + "/stages"
        try:
            pages.append(httpx.get(stages_url, timeout=5.0).json())
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("no stage times from %s: %s", stages_url, exc)
    if not pages:
        return None
    out: dict[str, Any] = {}
    for name in dict.fromkeys(n for page in pages for n in page):
        rows = [page[name] for page in pages if name in page]
        out[name] = {
            key: round(sum(float(r.get(key, 0.0)) for r in rows) / len(rows), 4) for key in rows[0]
        }
    out["workers"] = len(pages)
    return out


def bootstrap(settings: EvalSettings, stack: StackSettings) -> str:
    return settings.bootstrap or stack.bootstrap


def worker_urls(settings: EvalSettings, stack: StackSettings) -> list[str]:
    if settings.worker_urls:
        return list(settings.worker_urls)
    return [
        f"http://{stack.host}:{stack.worker_web_port + i}/healthz" for i in range(stack.workers)
    ]


def _retrain(base_url: str, timeout_s: float, echo: Callable[[str], None]) -> dict[str, Any]:
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


def _replay(
    settings: EvalSettings,
    stack: StackSettings,
    stream: ReplayStream,
    echo: Callable[[str], None],
    retrain: Callable[[], dict[str, Any]] | None = None,
) -> tuple[Joiner, ReplayTimes, dict[str, Any] | None]:
    # Explicit bootstrap over the environment's; security settings still come from it.
    kafka = KafkaSettings(bootstrap=bootstrap(settings, stack))
    probe = WorkerProbe(worker_urls(settings, stack)) if settings.wait_catalog else None
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
            times.paused_from = time.monotonic()
            retraining = retrain()
            times.paused_s = time.monotonic() - times.paused_from
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
