"""The report's PNG plots, drawn from ``report.json``'s series alone (so they can be redrawn).

``matplotlib.figure.Figure`` renders through Agg without pyplot: no GUI backend, no
global figure state, safe in a process that has other threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

PLOTS = {
    "hit_rate": "hit_rate.png",
    "latency": "latency.png",
    "stages": "stages.png",
    "throughput": "throughput.png",
}
# Entries of the stage summary that are not time (services/recommender/timing.py; the
# number of workers averaged).
NOT_STAGES = ("batch_size", "workers")


def label(name: str) -> str:
    return name.replace("_", " ")


def stage_names(stages: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The timed stages of every variant, the first variant's costliest first."""
    names = list(
        dict.fromkeys(
            n
            for per in stages.values()
            for n, row in per.items()
            if isinstance(row, dict) and n not in NOT_STAGES
        )
    )
    first = next(iter(stages.values()), {})

    def cost(name: str) -> float:
        return -float((first.get(name) or {}).get("per_click_ms", 0.0))

    return sorted(names, key=cost)


def write_plots(report: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """Every plot the report has data for; returns plot name -> file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    series = report.get("series") or {}
    k = report.get("settings", {}).get("k", 10)
    drawn: dict[str, Path] = {}
    draw = {
        "hit_rate": lambda: hit_rate(series.get("hit_rate"), k),
        "latency": lambda: latency(series.get("latency_histogram_ms")),
        "stages": lambda: stages(report.get("stages")),
        "throughput": lambda: throughput(series.get("throughput")),
    }
    for name, make in draw.items():
        fig = make()
        if fig is None:
            continue
        path = out_dir / PLOTS[name]
        fig.savefig(path, dpi=100)
        drawn[name] = path
    return drawn


def hit_rate(data: Mapping[str, Any] | None, k: int) -> Figure | None:
    """Rolling HR@k over the judged pairs, one line per recommender."""
    if not data or not data.get("x"):
        return None
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.subplots()
    for name, values in data["models"].items():
        system = name.startswith("system")
        ax.plot(data["x"], values, label=label(name), linewidth=2.2 if system else 1.2)
    ax.set_xlabel("judged pair (stream order)")
    ax.set_ylabel(f"HR@{k}, last {data['window']} pairs")
    ax.set_title(f"HR@{k} over the judged part of the stream")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def latency(data: Mapping[str, Any] | None) -> Figure | None:
    """Histograms of click-produced -> answer-received and in-worker latency (log x)."""
    if not data:
        return None
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    titles = {
        "end_to_end": "click produced → recommendation received",
        "in_worker": "inside the worker (latency_ms)",
    }
    for ax, (key, title) in zip(axes, titles.items(), strict=True):
        for variant, hists in data.items():
            hist = hists.get(key) or {}
            if hist.get("counts"):
                ax.stairs(hist["counts"], hist["edges"], label=label(variant), linewidth=1.5)
        ax.set_xscale("log")
        ax.set_xlabel("ms")
        ax.set_ylabel("answers")
        ax.set_title(title, fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def stages(data: Mapping[str, Any] | None) -> Figure | None:
    """The worker's milliseconds per click by stage, one bar per variant."""
    if not data:
        return None
    names = stage_names(data)
    if not names:
        return None
    fig = Figure(figsize=(9, max(3.0, 0.45 * len(names) + 1.5)), layout="constrained")
    ax = fig.subplots()
    height = 0.8 / len(data)
    for v, (variant, per_stage) in enumerate(data.items()):
        values = [float((per_stage.get(n) or {}).get("per_click_ms", 0.0)) for n in names]
        ys = [i + v * height for i in range(len(names))]
        ax.barh(ys, values, height=height, label=label(variant))
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(names))], [label(n) for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("ms per click (worker /stages, last batches)")
    ax.set_title("Where the worker's time goes")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def throughput(data: Mapping[str, Any] | None) -> Figure | None:
    """Clicks produced and answered per second, and CPU cores busy, over the replay."""
    if not data:
        return None
    fig = Figure(figsize=(10, 3.2 * len(data)), layout="constrained")
    axes = fig.subplots(len(data), 1, squeeze=False)[:, 0]
    for ax, (variant, s) in zip(axes, data.items(), strict=True):
        ax.plot(s["t_s"], s["answered_per_s"], label="answered / s", linewidth=1.5)
        ax.plot(s["t_s"], s["produced_per_s"], label="produced / s", linewidth=1, alpha=0.6)
        ax.set_yscale("symlog", linthresh=10)
        ax.set_ylabel("clicks / s")
        ax.set_title(label(variant), fontsize="medium")
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if s.get("cpu_cores"):
            twin = ax.twinx()
            (line,) = twin.plot(
                s["t_s"], s["cpu_cores"], color="tab:red", linewidth=1, label="CPU cores busy"
            )
            twin.set_ylabel("cores (workers + Triton)")
            twin.set_ylim(bottom=0)
            handles.append(line)
            labels.append(line.get_label())
        ax.legend(handles, labels, fontsize="small", loc="upper right")
    axes[-1].set_xlabel(f"seconds since the first click was produced (bins of {s['bin_s']:g} s)")
    return fig
