"""The replay's report: ``report.json`` with every figure, ``report.md`` with the tables,
and the PNG plots (``plots.py``)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.eval.plots import NOT_STAGES, stage_names, write_plots


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


def _labels(k: int) -> dict[str, str]:
    return {
        "hr": f"HR@{k}",
        "ndcg": f"NDCG@{k}",
        "mrr": f"MRR@{k}",
        "warm_hr": f"warm HR@{k}",
        "withheld_hr": f"withheld-item HR@{k}",
        "coverage": "catalog coverage",
        "intra_list_diversity": "intra-list diversity",
    }


def _sub(q: dict[str, Any], subset: str, key: str) -> Any:
    group = q.get(subset) or {}
    return group.get(key) if group.get("pairs") else None


def _intro(report: dict[str, Any]) -> list[str]:
    settings, stream = report["settings"], report["stream"]
    withheld = stream.get("withheld_items", 0)
    text = (
        f"{stream['clicks']} clicks by {stream['users']} users on {stream['items']} items, "
        f"{stream['order']}. The first {stream['warmup_clicks']} clicks warm up; "
        f"{report['quality']['pairs']} consecutive pairs of one user's clicks in the last "
        f"{stream['test_clicks']} are judged. Rate: "
        + (f"{settings['rate']:g} clicks/s" if settings["rate"] else "flat out")
        + (
            "; fresh stack started for the run."
            if settings["stack_started_here"]
            else "; on a stack that was already running (its item state is not fresh)."
        )
        + (
            " The ranker served was trained on the warm-up clicks only."
            if settings.get("initial_model") == "warmup"
            else " The initial ranker was trained on the synthetic data set only (it has"
            " never seen this data set)."
            if settings.get("initial_model") == "synthetic"
            else f" The ranker served is the one in `{settings['model_repository']}`."
            if settings.get("default_model_repository") is False
            else " The ranker served is the committed one (trained on all of ml-100k, so it"
            " has seen the judged period, the withheld items' clicks included)."
            if stream["dataset"] == "ml-100k"
            else ""
        )
    )
    if withheld:
        text += (
            f" {withheld} items ({settings.get('withhold_fraction', 0):.0%} of the catalog, "
            f"seed {settings.get('seed', 0)}) are withheld: their "
            f"{stream.get('withheld_warmup_clicks', 0)} warm-up clicks are not sent (their "
            "catalog events are), so they enter the judged part never clicked."
        )
    return [f"# Streaming replay: {stream['dataset']} (run `{report['run_id']}`)", "", text]


def _quality(report: dict[str, Any], k: int) -> list[str]:
    quality, items = report["quality"], max(1, report["stream"]["items"])
    subsets = quality.get("subsets") or {}
    lines = [
        "",
        "## Quality (consecutive-pair protocol)",
        "",
        f"| recommender | HR@{k} | NDCG@{k} | MRR@{k} | warm HR@{k} | withheld-item HR@{k} "
        f"| withheld, first click HR@{k} | catalog coverage | intra-list diversity "
        "| pairs answered |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, q in quality["models"].items():
        covered = q.get("covered", 0)
        lines.append(
            f"| {name.replace('_', ' ')} | {_fmt(q[f'hr@{k}'])} | {_fmt(q[f'ndcg@{k}'])} | "
            f"{_fmt(q.get(f'mrr@{k}'))} | {_fmt(_sub(q, 'warm', f'hr@{k}'))} | "
            f"{_fmt(_sub(q, 'withheld', f'hr@{k}'))} | "
            f"{_fmt(_sub(q, 'withheld_first_click', f'hr@{k}'))} | "
            f"{covered / items:.1%} ({covered}) | {_fmt(q.get('intra_list_diversity'))} | "
            f"{q['answered']} / {q['pairs']} |"
        )
    goal = quality["goal"]
    lines += [
        f"| *goal* | *{goal[f'hr@{k}']:.2f}* | *{goal[f'ndcg@{k}']:.2f}* | | | | | | | |",
        "",
        f"Pairs judged: {quality['pairs']}; {subsets.get('warm', '—')} whose next item is warm, "
        f"{subsets.get('withheld', '—')} whose next item is withheld, "
        f"{subsets.get('withheld_first_click', '—')} of them its first click in the stream "
        "(nobody had clicked it: only its text can bring it in). Catalog coverage: distinct "
        f"items in the judged top-{k} lists over the catalog. Intra-list diversity: mean "
        "pairwise cosine distance of a list's MiniLM item vectors, averaged over the lists.",
        "",
        f"The system {'meets' if goal['met'] else 'does not meet'} the goal.",
    ]
    verdicts = quality.get("verdicts") or {}
    if verdicts:
        lines += ["", "### The system against each baseline", ""]
        labels = _labels(k)
        for name, row in verdicts.items():

            def said(beats: bool, row: dict[str, Any] = row) -> str:
                return ", ".join(
                    f"{labels[fig]} ({_fmt(v['system'])} vs {_fmt(v['baseline'])})"
                    for fig, v in row.items()
                    if v["beats"] is beats
                )

            won, lost = said(True), said(False)
            baseline = name.replace("_", " ")
            if not lost:
                lines.append(f"- **Beats {baseline}** on every figure: {won}.")
            else:
                lines.append(
                    f"- **Does not beat {baseline}** on {lost}"
                    + (f"; beats it on {won}." if won else ".")
                )
    return lines


def _retraining(report: dict[str, Any], k: int) -> list[str]:
    lines: list[str] = []
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
    return lines


def _ablation(report: dict[str, Any], k: int) -> list[str]:
    ablation = report.get("ablation")
    if not ablation:
        return []
    on, off = ablation["with_text_embeddings"], ablation["without_text_embeddings"]
    rows = [
        (f"HR@{k}", "hr", 4),
        (f"warm HR@{k}", "warm_hr", 4),
        (f"withheld-item HR@{k}", "withheld_hr", 4),
        (f"withheld, first click HR@{k}", "withheld_first_click_hr", 4),
        (f"NDCG@{k}", "ndcg", 4),
        (f"MRR@{k}", "mrr", 4),
        ("catalog coverage", "coverage", 4),
        ("intra-list diversity", "intra_list_diversity", 4),
        ("CPU-s per 1,000 clicks (whole click replay)", "cpu_s_per_1000_clicks", 2),
        ("CPU-s per 1,000 clicks (judged part)", "cpu_s_per_1000_judged_clicks", 2),
        ("clicks/s answered", "clicks_per_s", 1),
        ("end-to-end p50 ms", "latency_p50_ms", 0),
        ("end-to-end p95 ms", "latency_p95_ms", 0),
        ("end-to-end p99 ms", "latency_p99_ms", 0),
    ]
    lines = [
        "",
        "## What the language-model item embeddings buy (ablation)",
        "",
        "The same stream through a second fresh stack whose workers ignore the items' text "
        f"embeddings (`{ablation['setting']}`): candidates from co-visitation, trending and "
        "popular items only (no semantic neighbours), no user segments (they cluster users by "
        "text vectors), a zero vector for every item into the ranker (it scores on the "
        "collaborative side features alone), lists in score order (no MMR). CPU time is the "
        "workers' and tritonserver's (with its Python-backend model processes), read from "
        "/proc, over the whole click replay and over its judged part.",
        "",
        "| | with text embeddings | IDs and collaborative only | difference |",
        "|---|---:|---:|---:|",
    ]
    for label, key, digits in rows:
        a, b = on.get(key), off.get(key)
        diff = a - b if isinstance(a, int | float) and isinstance(b, int | float) else None
        sign = "+" if diff is not None and diff > 0 else ""
        lines.append(
            f"| {label} | {_fmt(a, digits)} | {_fmt(b, digits)} | "
            f"{sign}{_fmt(diff, digits) if diff is not None else '—'} |"
        )
    lines += ["", _ablation_summary(on, off, k)]
    check = ablation.get("text_embeddings") or {}
    if not check.get("honoured", True):
        lines += [
            "",
            f"**INVALID: the second stack's workers did not turn text embeddings off** "
            f"({check.get('with_segment')} answers carry a user segment, "
            f"{check.get('with_text_reason')} a text-similarity reason): they do not pass "
            "`text_embeddings` from their settings to their ranking.",
        ]
    return lines


def _ablation_summary(on: dict[str, Any], off: dict[str, Any], k: int) -> str:
    """One sentence: what the text embeddings change in quality, and what they cost."""

    def change(key: str, digits: int) -> str:
        a, b = on.get(key), off.get(key)
        if not isinstance(a, int | float) or not isinstance(b, int | float):
            return "—"
        relative = f" ({(a - b) / b:+.1%})" if b else ""
        return f"{a - b:+.{digits}f}{relative}"

    return (
        f"With the text embeddings the system gets HR@{k} {change('hr', 4)}, warm HR@{k} "
        f"{change('warm_hr', 4)} and withheld-item HR@{k} {change('withheld_hr', 4)} over "
        f"IDs and collaborative signals alone, for {change('cpu_s_per_1000_clicks', 2)} "
        "CPU-s per 1,000 clicks over the whole click replay."
    )


def _runs(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    runs = {"system": report}
    if report.get("ablation"):
        runs[report["ablation"]["variant"]] = report["ablation"]
    return runs


def _delivery(report: dict[str, Any]) -> list[str]:
    runs = _runs(report)
    lines = [
        "",
        "## Completeness",
        "",
        "| run | clicks sent | dead-lettered | accepted | answered | missing "
        "| duplicate answers | degraded |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in runs.items():
        c = r["completeness"]
        lines.append(
            f"| {name.replace('_', ' ')} | {c['clicks_sent']} | {c['dead_lettered']} | "
            f"{c['accepted']} | {c['answered']} | {c['missing']} | {c['duplicate_answers']} | "
            f"{c['degraded_answers']} |"
        )
    lines += [
        "",
        "## Latency (ms), throughput and CPU time",
        "",
        "| run | measured | p50 | p95 | p99 | max | mean |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "end_to_end": "click produced → recommendation received",
        "in_worker": "inside the worker (`latency_ms`)",
    }
    for name, r in runs.items():
        for key, label in labels.items():
            s = r["latency_ms"][key]
            lines.append(
                f"| {name.replace('_', ' ')} | {label} | {_fmt(s['p50'], 1)} | "
                f"{_fmt(s['p95'], 1)} | {_fmt(s['p99'], 1)} | {_fmt(s['max'], 1)} | "
                f"{_fmt(s['mean'], 1)} |"
            )
    lines.append("")
    for name, r in runs.items():
        t = r["throughput"]
        cpu = r.get("cpu") or {}
        whole, judged = cpu.get("whole_replay") or {}, cpu.get("judged") or {}
        line = (
            f"- {name.replace('_', ' ')}: **{_fmt(t['clicks_per_s'], 1)} clicks/s** answered, "
            f"from the first click produced to the last recommendation received "
            f"({_fmt(t['first_produce_to_last_answer_s'], 1)} s); clicks were produced at "
            f"{_fmt(t['produce_clicks_per_s'], 1)}/s."
        )
        if whole:
            line += (
                f" CPU: **{_fmt(whole.get('cpu_s_per_1000_clicks'), 2)} s per 1,000 clicks** "
                f"over the whole click replay ({_cpu_parts(whole)}), "
                f"{_fmt(judged.get('cpu_s_per_1000_clicks'), 2)} s over the judged part."
            )
        lines.append(line)
    if not report["settings"]["rate"]:
        lines += [
            "",
            "Flat out, the clicks are produced far faster than they are answered, so the "
            "end-to-end latency is mostly time spent queued in `clicks`; a paced run "
            "(`--rate`) measures latency under load.",
        ]
    return lines


def _cpu_parts(window: dict[str, Any]) -> str:
    seconds = window.get("seconds") or {}
    return ", ".join(f"{name} {_fmt(v, 1)} s" for name, v in seconds.items())


def _stages(report: dict[str, Any]) -> list[str]:
    stages = report.get("stages") or {}
    if not stages:
        return []
    variants = list(stages)
    names = stage_names(stages)
    lines = [
        "",
        "## Where the worker's time goes",
        "",
        "Milliseconds per click by stage, from the workers' `/stages` pages at the end of the "
        "replay (their last 2,048 micro-batches).",
        "",
        "| stage | " + " | ".join(v.replace("_", " ") for v in variants) + " |",
        "|---|" + "---:|" * len(variants),
    ]
    for name in names:
        cells = [_fmt((stages[v].get(name) or {}).get("per_click_ms"), 3) for v in variants]
        lines.append(f"| {name.replace('_', ' ')} | " + " | ".join(cells) + " |")
    totals = [
        sum(
            float(row.get("per_click_ms", 0.0))
            for n, row in stages[v].items()
            if isinstance(row, dict) and n not in NOT_STAGES
        )
        for v in variants
    ]
    lines.append("| **total** | " + " | ".join(f"**{t:.3f}**" for t in totals) + " |")
    return lines


def markdown(report: dict[str, Any], plots: Mapping[str, Path] | None = None) -> str:
    """The report as Markdown tables a person reads (and the plots, where drawn)."""
    k = report["settings"]["k"]
    lines = [
        *_intro(report),
        *_quality(report, k),
        *_retraining(report, k),
        *_ablation(report, k),
        *_delivery(report),
        *_stages(report),
    ]
    if plots:
        titles = {
            "hit_rate": f"HR@{k} over the stream",
            "latency": "latency histograms",
            "stages": "time per stage",
            "throughput": "throughput and CPU over time",
        }
        lines += ["", "## Plots", ""]
        lines += [f"![{titles[name]}]({path.name})" for name, path in plots.items()]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out_dir: Path, plots: bool = True) -> tuple[Path, Path]:
    """Write ``report.json``, the PNG plots and ``report.md`` into ``out_dir``; returns the
    JSON's and the Markdown's paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = _finite(report)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    json_path.write_text(json.dumps(clean, indent=2, allow_nan=False) + "\n")
    drawn = write_plots(clean, out_dir) if plots else {}
    md_path.write_text(markdown(clean, drawn))
    return json_path, md_path
