"""Completeness, latency and throughput of one replay, from produce and receipt stamps."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.eval.collector import Joiner

PERCENTILES = (50, 95, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of values at or below it."""
    if not values:
        return math.nan
    if not 0 < q <= 100:
        raise ValueError(f"q must be in (0, 100], got {q}")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarize(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99, max and mean, rounded to 0.1 (NaN where there are none)."""
    out = {f"p{q}": round(percentile(values, q), 1) for q in PERCENTILES}
    out["max"] = round(max(values), 1) if values else math.nan
    out["mean"] = round(sum(values) / len(values), 1) if values else math.nan
    out["count"] = len(values)
    return out


@dataclass(frozen=True)
class Delivery:
    completeness: dict[str, Any]
    latency_ms: dict[str, dict[str, float]]
    throughput: dict[str, float]


def measure(
    joiner: Joiner,
    sent_at: Mapping[str, float],
    clicks_started: float,
    clicks_flushed: float,
    examples: int = 10,
) -> Delivery:
    """Every accepted (not dead-lettered) click should have exactly one answer."""
    sent = list(sent_at)
    dead = joiner.dead_lettered
    accepted = [e for e in sent if e not in dead]
    answered = [e for e in accepted if e in joiner.answers]
    missing = [e for e in accepted if e not in joiner.answers]
    duplicates = sum(joiner.duplicates.values())
    completeness = {
        "clicks_sent": len(sent),
        "dead_lettered": len(dead),
        "accepted": len(accepted),
        "answered": len(answered),
        "missing": len(missing),
        "duplicate_answers": duplicates,
        "clicks_with_duplicates": len(joiner.duplicates),
        "answered_but_dead_lettered": len(dead & joiner.answers.keys()),
        "degraded_answers": sum(1 for a in joiner.answers.values() if a.degraded),
        "model_versions": dict(Counter(a.model_version for a in joiner.answers.values())),
        "exactly_once": not missing and not duplicates,
        "missing_examples": missing[:examples],
        "duplicate_examples": [e for e, _ in joiner.duplicates.most_common(examples)],
        "foreign_records": joiner.foreign,
        "unreadable_records": joiner.unreadable,
    }
    end_to_end = [(joiner.answers[e].received_at - sent_at[e]) * 1000.0 for e in answered]
    in_worker = [
        a.worker_latency_ms
        for e in answered
        if (a := joiner.answers[e]).worker_latency_ms is not None
    ]
    last = max((joiner.answers[e].received_at for e in answered), default=math.nan)
    first = min(sent_at.values(), default=math.nan)
    span = last - first
    produce_span = clicks_flushed - clicks_started
    throughput = {
        "clicks_per_s": round(len(answered) / span, 1) if span > 0 else math.nan,
        "first_produce_to_last_answer_s": round(span, 3),
        "produce_clicks_per_s": round(len(sent) / produce_span, 1) if produce_span > 0 else 0.0,
        "produce_s": round(produce_span, 3),
    }
    return Delivery(
        completeness=completeness,
        latency_ms={"end_to_end": summarize(end_to_end), "in_worker": summarize(in_worker)},
        throughput=throughput,
    )
