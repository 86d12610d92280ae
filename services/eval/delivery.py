"""Completeness, latency and throughput of one replay, from produce and receipt stamps."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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


def latency_histogram(values: Sequence[float], bins: int = 40) -> dict[str, list[float]]:
    """Counts in ``bins`` log-spaced bins from the smallest value (at least 1 ms) to the
    largest: flat out, latencies span four orders of magnitude."""
    if not values:
        return {"edges": [], "counts": []}
    low, high = max(1.0, min(values)), max(max(values), 1.0)
    edges = np.geomspace(low, high * 1.0001, bins + 1) if high > low else np.array([low, low + 1])
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return {"edges": [round(float(e), 2) for e in edges], "counts": counts.tolist()}


def bin_seconds(span_s: float, max_bins: int = 300) -> float:
    """A bin width of 1, 2, 5, 10, 20, ... s giving at most ``max_bins`` bins over the span."""
    for width in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600):
        if span_s / width <= max_bins:
            return float(width)
    return math.ceil(span_s / max_bins)


def throughput_series(
    produced: Sequence[float], answered: Sequence[float], start: float, bin_s: float
) -> dict[str, Any]:
    """Clicks produced and answers received per second, in ``bin_s`` bins from ``start``."""
    end = max([*produced, *answered], default=start)
    bins = max(1, math.ceil((end - start) / bin_s))
    edges = start + bin_s * np.arange(bins + 1)

    def rate(times: Sequence[float]) -> list[float]:
        counts, _ = np.histogram(np.asarray(times, float), bins=edges)
        return [round(float(c) / bin_s, 2) for c in counts]

    return {
        "bin_s": bin_s,
        "t_s": [round(float(e - start), 3) for e in edges[:-1]],
        "produced_per_s": rate(produced),
        "answered_per_s": rate(answered),
    }


@dataclass(frozen=True)
class Delivery:
    completeness: dict[str, Any]
    latency_ms: dict[str, dict[str, float]]
    throughput: dict[str, float]
    # For the plots: the latency histograms and rates per time bin (from ``started``).
    series: dict[str, Any] = field(default_factory=dict)
    started: float = math.nan  # time.monotonic() of the first click produced


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
    received = [joiner.answers[e].received_at for e in answered]
    series: dict[str, Any] = {
        "latency_histogram_ms": {
            "end_to_end": latency_histogram(end_to_end),
            "in_worker": latency_histogram(in_worker),
        },
    }
    if sent_at:
        bin_s = bin_seconds(span if span > 0 else 1.0)
        series["throughput"] = throughput_series(list(sent_at.values()), received, first, bin_s)
    return Delivery(
        completeness=completeness,
        latency_ms={"end_to_end": summarize(end_to_end), "in_worker": summarize(in_worker)},
        throughput=throughput,
        series=series,
        started=first,
    )
