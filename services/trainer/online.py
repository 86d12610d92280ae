"""Online HR@10, read from what the workers publish, and drift on it.

Every recommendation carries its click's verdict on the user's previous list, per lane
(``Recommendation.judged``: a hit when the clicked item was in it). From those verdicts
this keeps, for the trainer:

- the served versions' online HR@10 (lane ``serving``);
- for a challenger in shadow, its HR@10 and the served version's **on the same clicks**
  (records that carry both lanes), which is what a shadow trial compares;
- one river ADWIN detector per segment on the served lane's hits (not the fallback's:
  lists ranked while Triton was down say nothing a retraining could fix). When a segment's hit
  rate drops (ADWIN finds a change and the mean fell), that is a drift: the trainer
  retrains before its timer would. A rise is a change too, but not one to retrain for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from services.contract.events import Recommendation
from services.recommender.scorer import LinearScorer

# Versions that rank while the scorer is unavailable: counted, never judged for drift or
# paired with a challenger.
FALLBACK_VERSIONS = frozenset({LinearScorer.version})


@dataclass
class Tally:
    judged: int = 0
    hits: int = 0

    @property
    def hr(self) -> float | None:
        return self.hits / self.judged if self.judged else None

    def add(self, hit: bool) -> None:
        self.judged += 1
        self.hits += int(hit)

    def to_dict(self) -> dict[str, Any]:
        return {"judged": self.judged, "hits": self.hits, "hr_at_10": _round(self.hr)}


@dataclass
class PairedTally:
    """A shadow version against the served one, on the clicks that judged both."""

    judged: int = 0
    shadow_hits: int = 0
    serving_hits: int = 0
    # Discordant verdicts: only one of the two lists held the clicked item.
    shadow_only: int = 0
    serving_only: int = 0
    serving_versions: set[str] = field(default_factory=set)

    def add(self, shadow_hit: bool, serving_hit: bool, serving_version: str) -> None:
        self.judged += 1
        self.shadow_hits += int(shadow_hit)
        self.serving_hits += int(serving_hit)
        self.shadow_only += int(shadow_hit and not serving_hit)
        self.serving_only += int(serving_hit and not shadow_hit)
        self.serving_versions.add(serving_version)

    @property
    def shadow_hr(self) -> float | None:
        return self.shadow_hits / self.judged if self.judged else None

    @property
    def serving_hr(self) -> float | None:
        return self.serving_hits / self.judged if self.judged else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "judged": self.judged,
            "shadow_hr_at_10": _round(self.shadow_hr),
            "serving_hr_at_10": _round(self.serving_hr),
            "shadow_only_hits": self.shadow_only,
            "serving_only_hits": self.serving_only,
            "serving_versions": sorted(self.serving_versions),
        }


@dataclass(frozen=True)
class Drift:
    segment: str
    before: float  # the segment's online HR@10 estimate just before the change
    after: float  # and just after it (ADWIN dropped the older part of its window)
    judged: int  # verdicts the segment had seen
    at: float = field(default_factory=time.time)

    def describe(self) -> str:
        return (
            f"drift: segment {self.segment}'s online HR@10 fell from {self.before:.3f} to "
            f"{self.after:.3f} (ADWIN, {self.judged} verdicts)"
        )


class SegmentDrift:
    """River's ADWIN on one segment's served-lane hits (1/0)."""

    def __init__(self, delta: float) -> None:
        from river.drift import ADWIN

        self.detector = ADWIN(delta=delta)
        self.tally = Tally()

    def update(self, hit: bool) -> tuple[float, float] | None:
        """(before, after) if the hit rate just dropped, else None."""
        before = float(self.detector.estimation)
        self.detector.update(int(hit))
        self.tally.add(hit)
        if self.detector.drift_detected:
            after = float(self.detector.estimation)
            if after < before:
                return before, after
        return None


class OnlineMonitor:
    """Folds published recommendations into online HR@10 and drift signals.

    ``min_judged``: a segment's detector may signal only after this many verdicts, so a
    detector's noisy start is not taken for drift. Thread-safe: a reader thread feeds it
    while the trainer and the HTTP endpoint read it.
    """

    def __init__(
        self,
        delta: float = 0.002,
        min_judged: int = 500,
        on_drift: Callable[[Drift], None] | None = None,
    ) -> None:
        self.delta, self.min_judged, self.on_drift = delta, min_judged, on_drift
        self.versions: dict[str, Tally] = {}
        self.shadow: dict[str, PairedTally] = {}
        self.segments: dict[str, SegmentDrift] = {}
        self.drifts: list[Drift] = []
        self.records = 0
        self._lock = threading.Lock()

    def observe(self, rec: Recommendation) -> Drift | None:
        drift = None
        with self._lock:
            self.records += 1
            lanes = {j.lane: j for j in rec.judged}
            served = lanes.get("serving")
            if served is not None:
                self.versions.setdefault(served.model_version, Tally()).add(served.hit)
            if served is not None and served.model_version not in FALLBACK_VERSIONS:
                segment = str(served.segment)
                detector = self.segments.get(segment)
                if detector is None:
                    detector = self.segments[segment] = SegmentDrift(self.delta)
                fell = detector.update(served.hit)
                if fell is not None and detector.tally.judged >= self.min_judged:
                    drift = Drift(segment, fell[0], fell[1], detector.tally.judged)
                    self.drifts = [*self.drifts[-19:], drift]
            shadow = lanes.get("shadow")
            judged_fairly = served is not None and served.model_version not in FALLBACK_VERSIONS
            if shadow is not None and served is not None and judged_fairly:
                paired = self.shadow.setdefault(shadow.model_version, PairedTally())
                paired.add(shadow.hit, served.hit, served.model_version)
        if drift is not None and self.on_drift is not None:
            self.on_drift(drift)
        return drift

    def paired(self, shadow_version: str) -> PairedTally:
        """A copy of the shadow version's paired tally (zero if it has none yet)."""
        with self._lock:
            tally = self.shadow.get(shadow_version, PairedTally())
            return replace(tally, serving_versions=set(tally.serving_versions))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "records": self.records,
                "versions": {v: t.to_dict() for v, t in sorted(self.versions.items())},
                "segments": {
                    s: {**d.tally.to_dict(), "estimate": _round(float(d.detector.estimation))}
                    for s, d in sorted(self.segments.items())
                },
                "shadow": {v: t.to_dict() for v, t in sorted(self.shadow.items())},
                "drifts": [asdict(d) for d in self.drifts],
            }


def shadow_verdict(
    tally: PairedTally, tolerance: float, min_judged: int, z: float = 1.645
) -> tuple[bool | None, str]:
    """Whether the shadow's online HR@10 allows promotion: None if too few verdicts.

    Mind the exposure bias: users were shown the served list only, and click what they
    are shown, so the served version has an edge; this is why the rule is off unless
    ``shadow_rule`` turns it on, and why it refuses only a clear loss.

    Worse means both: below the served HR by more than ``tolerance`` (a share), and a
    one-sided sign test on the discordant verdicts (McNemar's, normal approximation, 95%
    by default) says the gap is not noise. A few hundred paired verdicts of a 20% hit rate
    differ by several points by chance alone; the test keeps that from rejecting.
    """
    n = tally.judged
    if n < min_judged or tally.shadow_hr is None or tally.serving_hr is None:
        return None, f"{n} paired online verdicts in shadow (< {min_judged}): decided offline"
    shadow, served = tally.shadow_hr, tally.serving_hr
    gap = tally.serving_only - tally.shadow_only
    discordant = tally.serving_only + tally.shadow_only
    significant = discordant > 0 and gap > z * discordant**0.5
    summary = (
        f"online HR@10 in shadow {shadow:.4f} vs served {served:.4f} on the same {n} clicks "
        f"({tally.shadow_only} hits only the challenger's, {tally.serving_only} only the "
        "served one's)"
    )
    if shadow < served * (1.0 - tolerance) and significant:
        return False, summary + f": worse beyond {tolerance:.1%} (sign test, z={z})"
    return True, summary


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
