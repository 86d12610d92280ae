"""Render results: a Markdown table per protocol, the published anchors, and JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# RecBole's quick-start GRU4Rec on ml-100k (leave-one-out by time, full ranking). RecBole's
# sequential full-sort evaluation masks no history items, so compare these with the
# "unmasked" leave-one-out table, not the masked one.
ANCHORS: dict[str, dict[str, float]] = {
    "GRU4Rec (RecBole quick-start, ml-100k)": {"hr@10": 0.110, "ndcg@10": 0.051},
}


def report_table(results: Mapping[str, Mapping[str, float]], *, digits: int = 4) -> str:
    """A Markdown table, one row per model, one column per metric (first-seen order)."""
    columns: list[str] = []
    for metrics in results.values():
        columns.extend(name for name in metrics if name not in columns)
    lines = [
        "| model | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for model, metrics in results.items():
        cells = [_cell(name, metrics.get(name), digits) for name in columns]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def anchors_text(anchors: Mapping[str, Mapping[str, float]] = ANCHORS) -> str:
    """One line per published reference result."""
    return "\n".join(
        f"- {name}: " + ", ".join(f"{metric.upper()} {value:.3f}" for metric, value in m.items())
        for name, m in anchors.items()
    )


def json_safe(value: Any) -> Any:
    """NaN and infinities become ``None``: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _cell(name: str, value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if name.startswith("n_") or name == "n":
        return f"{int(value)}"
    return f"{value:.{digits}f}"
