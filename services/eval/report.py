"""The replay's report: ``report.json`` with every figure and ``report.md`` with the tables."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _finite(value: Any) -> Any:
    """NaN and infinities as null, so the JSON stays standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables a person reads."""
    k = report["settings"]["k"]
    stream, completeness = report["stream"], report["completeness"]
    lines = [
        f"# Streaming replay: {stream['dataset']} (run `{report['run_id']}`)",
        "",
        f"{stream['clicks']} clicks by {stream['users']} users on {stream['items']} items, "
        f"{stream['order']}. The first {stream['warmup_clicks']} clicks warm up; "
        f"{report['quality']['pairs']} consecutive pairs of one user's clicks in the last "
        f"{stream['test_clicks']} are judged. Rate: "
        + (f"{report['settings']['rate']:g} clicks/s" if report["settings"]["rate"] else "flat out")
        + (
            "; fresh stack started for the run."
            if report["settings"]["stack_started_here"]
            else "; on a stack that was already running (its item state is not fresh)."
        )
        + (
            " The ranker served was trained on the warm-up clicks only."
            if report["settings"].get("initial_model") == "warmup"
            else " The initial ranker was trained on the synthetic data set only (it has"
            " never seen this data set)."
            if report["settings"].get("initial_model") == "synthetic"
            else f" The ranker served is the one in `{report['settings']['model_repository']}`."
            if report["settings"].get("default_model_repository") is False
            else " The ranker served is the committed one (trained on all of ml-100k, so it"
            " has seen the judged period)."
            if stream["dataset"] == "ml-100k"
            else ""
        ),
        "",
        "## Quality (consecutive-pair protocol)",
        "",
        f"| recommender | HR@{k} | NDCG@{k} | pairs answered | catalog coverage |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, q in report["quality"]["models"].items():
        covered = q.get("covered", 0)
        lines.append(
            f"| {name} | {_fmt(q[f'hr@{k}'])} | {_fmt(q[f'ndcg@{k}'])} | "
            f"{q['answered']} / {q['pairs']} | {covered} items "
            f"({covered / max(1, stream['items']):.1%}) |"
        )
    goal = report["quality"]["goal"]
    lines += [
        f"| *goal* | *{goal[f'hr@{k}']:.2f}* | *{goal[f'ndcg@{k}']:.2f}* | | |",
        "",
        f"The system {'meets' if goal['met'] else 'does not meet'} the goal.",
    ]
    by_version = report["quality"].get("by_model_version") or {}
    retraining = report.get("retraining")
    if retraining:
        pause = report["throughput"].get("retraining_pause_s")
        rate = report["throughput"].get("clicks_per_s_excluding_pause")
        challenger, champion = retraining.get("challenger") or {}, retraining.get("champion") or {}
        lines += [
            "",
            f"Retraining after the warm-up: **{retraining.get('decision')}** "
            f"({retraining.get('reason')}); the trainer's own holdout: challenger HR@10 "
            f"{_fmt(challenger.get('hr_at_10'))} / NDCG@10 {_fmt(challenger.get('ndcg_at_10'))}"
            f", champion {_fmt(champion.get('hr_at_10'))} / {_fmt(champion.get('ndcg_at_10'))}. "
            f"The replay paused while it ran ({_fmt(pause, 0)} s; the throughput below "
            f"includes the pause, {_fmt(rate, 1)} clicks/s without it).",
        ]
    if len(by_version) > 1 or retraining:
        lines += [
            "",
            f"| scorer version answering | HR@{k} | NDCG@{k} | pairs |",
            "|---|---:|---:|---:|",
        ]
        for version, q in by_version.items():
            lines.append(
                f"| {version} | {_fmt(q[f'hr@{k}'])} | {_fmt(q[f'ndcg@{k}'])} | {q['pairs']} |"
            )
    lines += [
        "",
        "## Completeness",
        "",
        "| clicks sent | dead-lettered | accepted | answered | missing | duplicate answers "
        "| degraded |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {completeness['clicks_sent']} | {completeness['dead_lettered']} | "
        f"{completeness['accepted']} | {completeness['answered']} | "
        f"{completeness['missing']} | {completeness['duplicate_answers']} | "
        f"{completeness['degraded_answers']} |",
        "",
        "## Latency (ms) and throughput",
        "",
        "| measured | p50 | p95 | p99 | max | mean |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "end_to_end": "click produced → recommendation received",
        "in_worker": "inside the worker (`latency_ms`)",
    }
    for key, label in labels.items():
        s = report["latency_ms"][key]
        lines.append(
            f"| {label} | {_fmt(s['p50'], 1)} | {_fmt(s['p95'], 1)} | {_fmt(s['p99'], 1)} | "
            f"{_fmt(s['max'], 1)} | {_fmt(s['mean'], 1)} |"
        )
    t = report["throughput"]
    lines += [
        "",
        f"Throughput: **{_fmt(t['clicks_per_s'], 1)} clicks/s** answered, from the first "
        f"click produced to the last recommendation received "
        f"({_fmt(t['first_produce_to_last_answer_s'], 1)} s); clicks were produced at "
        f"{_fmt(t['produce_clicks_per_s'], 1)}/s.",
    ]
    if not report["settings"]["rate"]:
        lines += [
            "",
            "Flat out, the clicks are produced far faster than they are answered, so the "
            "end-to-end latency is mostly time spent queued in `clicks`; a paced run "
            "(`--rate`) measures latency under load.",
        ]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = _finite(report)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    json_path.write_text(json.dumps(clean, indent=2, allow_nan=False) + "\n")
    md_path.write_text(markdown(clean))
    return json_path, md_path
