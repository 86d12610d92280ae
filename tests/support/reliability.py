"""Scale and figures for the fault suite (tests/reliability, docs/RELIABILITY.md).

CI runs every fault at a scale that fits its budget; `make soak` sets
STREAMREC_RELIABILITY_SCALE=full and runs the issue's numbers (10,000-click replays, 30 s
outages, the 30-minute soak). Each test records what it measured with :func:`record`, so
the figures in docs/RELIABILITY.md come from a file, not from memory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
FIGURES = REPO / "build" / "reliability"


def full_scale() -> bool:
    return os.environ.get("STREAMREC_RELIABILITY_SCALE", "ci") == "full"


def scale(ci: T, full: T) -> T:
    """The CI value, or the full one under `make soak`."""
    return full if full_scale() else ci


def record(name: str, **figures: Any) -> Path:
    """Write one test's figures to build/reliability/<name>.json (and print them)."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / f"{name}.json"
    body = {"scale": "full" if full_scale() else "ci", **figures}
    path.write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
    print(f"reliability figures {name}: {json.dumps(body, default=str)}")
    return path
