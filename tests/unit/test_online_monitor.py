"""Online HR@10, drift and the shadow verdict, on recommendation records built here."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.contract.events import Judged, Recommendation
from services.kafka.settings import KafkaSettings
from services.trainer.job import Outcome, _shadow_trial
from services.trainer.online import Drift, OnlineMonitor, PairedTally, shadow_verdict
from services.trainer.service import Trainer
from services.trainer.settings import TrainerSettings
from services.trainer.shadow_trial import ShadowResult, ShadowTrial
from services.trainer.validate import ModelRejected
from tests.support.scorer_models import scorer_repository


def rec(
    segment: int, hit: bool, version: str = "scorer:1", shadow: tuple[str, bool] | None = None
) -> Recommendation:
    judged = [Judged(lane="serving", model_version=version, segment=segment, hit=hit)]
    if shadow is not None:
        judged.append(
            Judged(lane="shadow", model_version=shadow[0], segment=segment, hit=shadow[1])
        )
    return Recommendation(
        user_id="u",
        event_id="e",
        items=[],
        model_version=version,
        generated_at=datetime.now(UTC),
        latency_ms=1.0,
        judged=judged,
    )


def feed(monitor: OnlineMonitor, segment: int, rate: float, n: int, rng: random.Random) -> None:
    for _ in range(n):
        monitor.observe(rec(segment, rng.random() < rate))


def test_online_hr_is_kept_per_version_and_first_clicks_count_nothing() -> None:
    monitor = OnlineMonitor()
    for hit in (True, False, False, True):
        monitor.observe(rec(0, hit, "scorer:1"))
    monitor.observe(rec(0, True, "scorer:2"))
    monitor.observe(rec(0, True).model_copy(update={"judged": []}))  # a user's first click
    snap = monitor.snapshot()
    assert snap["records"] == 6
    assert snap["versions"]["scorer:1"] == {"judged": 4, "hits": 2, "hr_at_10": 0.5}
    assert snap["versions"]["scorer:2"]["judged"] == 1


def test_a_segment_whose_hit_rate_drops_signals_drift_and_the_others_do_not() -> None:
    rng = random.Random(0)
    drifts: list[Drift] = []
    monitor = OnlineMonitor(delta=0.002, min_judged=300, on_drift=drifts.append)
    for _ in range(6):  # interleaved, as segments' clicks arrive
        feed(monitor, 0, 0.3, 200, rng)
        feed(monitor, 1, 0.3, 200, rng)
    assert drifts == []  # 2,400 stationary verdicts: no false alarm
    for _ in range(3):
        feed(monitor, 0, 0.3, 200, rng)
        feed(monitor, 1, 0.05, 200, rng)  # segment 1's users stop finding what they want
    assert drifts, "the drop was not detected"
    assert {d.segment for d in drifts} == {"1"}
    assert drifts[0].after < drifts[0].before
    assert "segment 1's online HR@10 fell" in drifts[0].describe()


def test_a_rise_is_not_a_drift_to_retrain_for() -> None:
    rng = random.Random(1)
    drifts: list[Drift] = []
    monitor = OnlineMonitor(min_judged=100, on_drift=drifts.append)
    feed(monitor, 2, 0.05, 1500, rng)
    feed(monitor, 2, 0.4, 1500, rng)
    assert drifts == []


def test_a_young_detector_cannot_signal() -> None:
    drifts: list[Drift] = []
    monitor = OnlineMonitor(min_judged=10_000, on_drift=drifts.append)
    rng = random.Random(2)
    feed(monitor, 0, 0.5, 1000, rng)
    feed(monitor, 0, 0.0, 1000, rng)
    assert drifts == []


def test_fallback_lists_are_counted_but_never_judged_for_drift_or_pairs() -> None:
    drifts: list[Drift] = []
    monitor = OnlineMonitor(min_judged=100, on_drift=drifts.append)
    rng = random.Random(3)
    feed(monitor, 0, 0.3, 1000, rng)
    for _ in range(1000):  # Triton down: the fallback ranks, and ranks worse
        monitor.observe(
            rec(0, rng.random() < 0.02, "fallback-linear", ("scorer:challenger-1", True))
        )
    assert drifts == []
    assert monitor.snapshot()["versions"]["fallback-linear"]["judged"] == 1000
    assert monitor.paired("scorer:challenger-1").judged == 0


def test_shadow_verdicts_are_paired_on_the_same_clicks() -> None:
    monitor = OnlineMonitor()
    monitor.observe(rec(0, True, shadow=("scorer:challenger-1", False)))
    monitor.observe(rec(0, False, shadow=("scorer:challenger-1", True)))
    monitor.observe(rec(0, False, shadow=("scorer:challenger-1", True)))
    monitor.observe(rec(0, True))  # not in the shadow share: not paired
    tally = monitor.paired("scorer:challenger-1")
    assert (tally.judged, tally.shadow_hits, tally.serving_hits) == (3, 2, 1)
    assert (tally.shadow_only, tally.serving_only) == (2, 1)
    assert monitor.paired("scorer:challenger-2").judged == 0


def paired(n: int, shadow_only: int, serving_only: int, both: int) -> PairedTally:
    return PairedTally(
        judged=n,
        shadow_hits=both + shadow_only,
        serving_hits=both + serving_only,
        shadow_only=shadow_only,
        serving_only=serving_only,
    )


def test_the_shadow_verdict_needs_enough_clicks_and_a_real_gap() -> None:
    ok, why = shadow_verdict(paired(100, 0, 30, 10), 0.01, min_judged=500)
    assert ok is None and "decided offline" in why
    # 20% vs 16% on 1,000 clicks, 40 more hits only the served list had: worse, not noise.
    ok, why = shadow_verdict(paired(1000, 10, 50, 150), 0.01, min_judged=500)
    assert ok is False and "worse beyond" in why
    # 20% vs 19.5%: within noise (5 discordant hits).
    ok, _ = shadow_verdict(paired(1000, 20, 25, 175), 0.01, min_judged=500)
    assert ok is True
    ok, _ = shadow_verdict(paired(1000, 60, 10, 150), 0.01, min_judged=500)
    assert ok is True  # better


class FakeShadow:
    def __init__(self, tally: PairedTally | None = None, error: str | None = None) -> None:
        self.tally, self.error = tally, error

    def __call__(self, staged: Path) -> ShadowResult:
        if self.error:
            raise ModelRejected(self.error)
        assert self.tally is not None
        return ShadowResult("scorer:challenger-5", self.tally, 12.0)


@pytest.mark.parametrize("rule", [True, False])
def test_a_challenger_worse_in_shadow_is_kept_out_when_the_rule_is_on(rule: bool) -> None:
    settings = TrainerSettings(shadow_min_judged=500, shadow_rule=rule)
    assert TrainerSettings().shadow_rule is False  # advisory unless turned on (exposure bias)
    outcome = Outcome("kept-champion", "", 1)
    promote, why = _shadow_trial(
        FakeShadow(paired(1000, 10, 50, 150)), Path("."), settings, outcome, "offline ok"
    )
    assert promote is not rule
    assert outcome.online["label"] == "scorer:challenger-5" and outcome.online["judged"] == 1000
    assert "online HR@10 in shadow 0.1600 vs served 0.2000" in why


def test_a_challenger_triton_cannot_load_in_shadow_is_rejected() -> None:
    outcome = Outcome("kept-champion", "", 1)
    promote, why = _shadow_trial(
        FakeShadow(error="Triton cannot load the shadow: bad"),
        Path("."),
        TrainerSettings(),
        outcome,
        "offline ok",
    )
    assert not promote and outcome.decision == "rejected" and "cannot load" in why


def test_the_trial_ends_early_once_enough_clicks_judged_both(tmp_path: Path) -> None:
    class Releaser:
        model = "scorer"

        def __init__(self) -> None:
            self.loaded: list[str] = []

        def shadow(self, staged: Path, label: str):  # type: ignore[no-untyped-def]
            import contextlib

            @contextlib.contextmanager
            def cm():  # type: ignore[no-untyped-def]
                self.loaded.append(label)
                yield "scorer-shadow"
                self.loaded.append("unloaded")

            return cm()

    monitor = OnlineMonitor()
    releaser = Releaser()
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s
        label = releaser.loaded[0]
        for _ in range(100):
            monitor.observe(rec(0, True, shadow=(label, True)))

    trial = ShadowTrial(releaser, monitor, 600, 300, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    result = trial(tmp_path)
    assert result.tally.judged == 300 and now[0] == 3.0
    assert releaser.loaded[-1] == "unloaded"


def test_drift_queues_one_retraining_per_cooldown(tmp_path: Path) -> None:
    settings = TrainerSettings(
        model_repository=scorer_repository(tmp_path / "repo"),
        data_dir=tmp_path / "trainer",
        drift_cooldown_s=3600,
    )
    trainer = Trainer(settings, KafkaSettings())
    drift = Drift("3", 0.3, 0.1, 900)
    trainer.on_drift(drift)
    trainer.jobs[0]["state"] = "done"  # so only the cool-down holds the next one back
    trainer.on_drift(drift)
    assert [j["reason"] for j in trainer.jobs] == [drift.describe()]
    trainer.last_drift_request -= 3601  # the cool-down has passed
    trainer.on_drift(drift)
    assert len(trainer.jobs) == 2
    off = Trainer(settings.model_copy(update={"drift": False}), KafkaSettings())
    off.on_drift(drift)
    assert off.jobs == []


def test_a_stopping_service_ends_the_trial_at_once(tmp_path: Path) -> None:
    import contextlib
    import threading

    class Releaser:
        model = "scorer"
        unloaded = False

        @contextlib.contextmanager
        def shadow(self, staged: Path, label: str):  # type: ignore[no-untyped-def]
            yield "scorer-shadow"
            Releaser.unloaded = True

    stopping = threading.Event()
    stopping.set()
    waited: list[float] = []
    trial = ShadowTrial(
        Releaser(), OnlineMonitor(), 600, 300, stopping=stopping, sleep=waited.append
    )  # type: ignore[arg-type]
    result = trial(tmp_path)
    assert waited == [] and result.tally.judged == 0 and Releaser.unloaded
