"""One retraining: log → split → fine-tune the champion → judge both → release or not.

Point in time throughout: the challenger trains on the clicks before the holdout window
with side features as of each click (``train_from_events``), and both models are judged
on the window with side features as of each judged click (``evaluate``).

The challenger is what gets released: trained without the holdout window, so its
numbers are honest. The window's clicks reach the model at the next retraining.
The segment model is not re-fitted here: river's KMeans in the worker already learns
with every click, and the ranker never reads segment ids (``model_side`` zeroes them).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from models.offline.data import Interactions
from models.ranker_training import TrainConfig
from models.train_ranker import (
    CHECKPOINT_FILE,
    MODEL_FILE,
    embed_items,
    train_from_events,
    write_version,
)
from services.trainer.evaluate import Scores, evaluate, split
from services.trainer.event_log import EventLog
from services.trainer.online import shadow_verdict
from services.trainer.release import Release, Releaser
from services.trainer.settings import TrainerSettings
from services.trainer.shadow_trial import ShadowResult
from services.trainer.validate import ModelRejected

log = logging.getLogger(__name__)

PLAN_FILE = "model.plan"
PLAN_TOLERANCE = 5e-2  # max abs score difference FP16 vs ONNX, as tests/unit/test_tensorrt.py


class NotEnoughData(RuntimeError):
    """Too few clicks in the log to train or judge on."""


@dataclass
class Outcome:
    """A retraining's decision, with the numbers behind it."""

    decision: str  # promoted, kept-champion, rejected
    reason: str
    champion_version: int | None
    challenger: dict[str, object] = field(default_factory=dict)
    champion: dict[str, object] = field(default_factory=dict)
    # The shadow trial's online HR@10 (challenger vs served on the same clicks), if one ran.
    online: dict[str, object] = field(default_factory=dict)
    release: Release | None = None
    seconds: float = 0.0


def better_enough(
    challenger: Scores, champion: Scores | None, tolerance: float
) -> tuple[bool, str]:
    """Promote unless HR@10 or NDCG@10 fell by more than ``tolerance`` (a share)."""
    if champion is None:
        return True, "no champion to compare with"
    for name in ("hr_at_10", "ndcg_at_10"):
        new, old = getattr(challenger, name), getattr(champion, name)
        if new < old * (1.0 - tolerance):
            return False, f"{name} {new:.4f} < champion {old:.4f} by more than {tolerance:.1%}"
    return True, (
        f"HR@10 {challenger.hr_at_10:.4f} vs {champion.hr_at_10:.4f}, "
        f"NDCG@10 {challenger.ndcg_at_10:.4f} vs {champion.ndcg_at_10:.4f} "
        f"(tolerance {tolerance:.1%})"
    )


def retrain(
    settings: TrainerSettings,
    event_log: EventLog,
    releaser: Releaser,
    shadow: Callable[[Path], ShadowResult] | None = None,
) -> Outcome:
    """One retraining. ``shadow``: a trial on live traffic between the offline verdict and
    the release (the service passes one; a one-off run has no live monitor)."""
    started = time.perf_counter()
    items, clicks = event_log.load()
    catalog = {i.item_id for i in items}
    # Only catalog items can be recommended (and embedded from their text).
    clicks = [c for c in clicks if c.item_id in catalog]
    if len(clicks) < settings.min_clicks:
        raise NotEnoughData(
            f"{len(clicks)} clicks on catalog items in the log; "
            f"training needs {settings.min_clicks}"
        )
    interactions = Interactions.from_clicks(clicks, catalog=[i.item_id for i in items])
    holdout = split(interactions, settings.holdout_fraction, settings.max_eval_cases, settings.seed)
    if len(holdout) == 0:
        raise NotEnoughData("no holdout click has an earlier click of its user to judge by")
    train = [c for c in clicks if c.ts.timestamp() < holdout.start_time]
    before_holdout = len(train)
    if 0 < settings.max_train_clicks < len(train):
        train = sorted(train, key=lambda c: c.ts)[-settings.max_train_clicks :]
    embeddings = embed_items(items, [])

    folder = releaser.folder
    champion_version = folder.serving()
    champion_dir = folder.version_path(champion_version) if champion_version else None
    checkpoint = champion_dir / CHECKPOINT_FILE if champion_dir else None
    warm = checkpoint if checkpoint is not None and checkpoint.is_file() else None

    trained = train_from_events(
        items,
        train,
        TrainConfig(
            epochs=settings.epochs, patience=settings.patience, seed=settings.seed, progress=False
        ),
        embeddings=embeddings,
        warm_start=warm,
    )
    staged = folder.stage()
    try:
        label = (
            f"trainer {datetime.now(UTC).isoformat(timespec='seconds')}: {len(train)} clicks "
            f"(the newest of {before_holdout}) before the holdout, warm start from "
            f"{'version ' + str(champion_version) if warm else 'scratch'}"
        )
        write_version(trained, staged, label)
        tensorrt = export_plan(staged, settings.model) if settings.tensorrt else "off"
        challenger = evaluate(staged / MODEL_FILE, embeddings, holdout)
        champion = None
        if champion_dir is not None and (champion_dir / MODEL_FILE).is_file():
            champion = evaluate(champion_dir / MODEL_FILE, embeddings, holdout)
        promote, why = better_enough(challenger, champion, settings.tolerance)
        outcome = Outcome(
            decision="kept-champion",
            reason=why,
            champion_version=champion_version,
            challenger={
                **challenger.to_dict(),
                "train_clicks": len(train),
                "clicks_before_holdout": before_holdout,
                "warm_start": champion_version if warm else None,
                "train_seconds": round(trained.seconds, 1),
                "tensorrt": tensorrt,
            },
            champion=dict(champion.to_dict()) if champion else {},
        )
        if promote and shadow is not None:
            promote, why = _shadow_trial(shadow, staged, settings, outcome, why)
            outcome.reason = why
            if outcome.decision == "rejected":
                promote = False
        if promote:
            details: dict[str, object] = {
                "challenger": outcome.challenger,
                "champion": outcome.champion,
                "online": outcome.online,
                "reason": why,
            }
            try:
                outcome.release = releaser.promote(staged, label, details)
                outcome.decision = "promoted"
            except ModelRejected as exc:
                outcome.decision, outcome.reason = "rejected", str(exc)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    outcome.seconds = time.perf_counter() - started
    log.info("retraining: %s (%s)", outcome.decision, outcome.reason)
    return outcome


def _shadow_trial(
    shadow: Callable[[Path], ShadowResult],
    staged: Path,
    settings: TrainerSettings,
    outcome: Outcome,
    why: str,
) -> tuple[bool, str]:
    """Run the trial; returns (promote, reason). A challenger Triton cannot load even in
    shadow is rejected here, before it could reach the release."""
    try:
        result = shadow(staged)
    except ModelRejected as exc:
        outcome.decision = "rejected"
        return False, str(exc)
    outcome.online = result.to_dict()
    ok, online_why = shadow_verdict(result.tally, settings.tolerance, settings.shadow_min_judged)
    if ok is False and settings.shadow_rule:
        return False, online_why
    return True, f"{why}; {online_why}"


def export_plan(version_dir: Path, model: str = "scorer") -> str:
    """On a GPU machine, the new version's TensorRT engine beside its ONNX (``model.plan``,
    FP16, for a GPU Triton whose scorer is a ``tensorrt_plan`` model: see
    models/tensorrt_build.py). Returns what happened, for the decision record; a failed
    build costs the plan, not the release (the ONNX is what the CPU path serves)."""
    import numpy as np

    from models.tensorrt_build import (
        PROFILES,
        GpuUnavailable,
        build_engine,
        onnx_reference,
        probe_inputs,
        run_engine,
    )

    if model not in PROFILES:
        return f"skipped: no TensorRT optimisation profile for {model!r}"
    onnx = version_dir / MODEL_FILE
    try:
        plan, seconds = build_engine(onnx, model)
        # The same parity check as models.tensorrt_build: FP16 against onnxruntime.
        feeds = probe_inputs(model, np.random.default_rng(0))
        got, _ = run_engine(plan, feeds)
        want, _ = onnx_reference(onnx, feeds)
        diff = max(float(np.max(np.abs(got[k] - want[k]))) for k in want)
    except GpuUnavailable as exc:
        return f"skipped: {exc}"
    except Exception as exc:  # a TensorRT parser or builder error
        log.warning("TensorRT build failed: %s", exc)
        return f"failed: {exc}"
    if diff > PLAN_TOLERANCE:
        return f"failed: the FP16 engine differs from the ONNX by {diff:.3g} (> {PLAN_TOLERANCE})"
    (version_dir / PLAN_FILE).write_bytes(plan)
    return f"built model.plan in {seconds:.1f} s ({len(plan)} bytes, max abs diff {diff:.2g})"


def write_outcome(settings: TrainerSettings, outcome: Outcome) -> Path:
    """Append the decision to ``<data_dir>/decisions.jsonl``; returns the file."""
    import json
    from dataclasses import asdict

    path = Path(settings.data_dir) / "decisions.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = asdict(outcome)
    record["at"] = time.time()
    with path.open("a") as fh:
        fh.write(json.dumps(record, default=str) + "\n")
    return path
