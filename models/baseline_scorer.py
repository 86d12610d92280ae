"""The first scorer Triton serves: a linear model over collaborative candidate features.

It is deliberately simple (the LLM scorer replaces it) but it is real: a torch
module exported to ONNX with dynamic batch and candidate axes, served by Triton,
and checked for parity against torch.

    python -m models.baseline_scorer triton_models/scorer/1/model.onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from models import onnx_export
from models.candidate_features import BASELINE_WEIGHTS, NUM_FEATURES

INPUT_NAME = "FEATURES"  # [batch, candidates, NUM_FEATURES] float32
OUTPUT_NAME = "SCORES"  # [batch, candidates] float32


class LinearScorer(nn.Module):
    """score = features · w + b for every candidate of every request."""

    def __init__(self, weights: tuple[float, ...] = BASELINE_WEIGHTS, bias: float = 0.0) -> None:
        super().__init__()
        if len(weights) != NUM_FEATURES:
            raise ValueError(f"expected {NUM_FEATURES} weights, got {len(weights)}")
        self.linear = nn.Linear(NUM_FEATURES, 1)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([weights], dtype=torch.float32))
            self.linear.bias.fill_(bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features).squeeze(-1)


def export_onnx(model: nn.Module, path: Path | None = None) -> bytes:
    """Export to ONNX with dynamic batch and candidate axes; write to ``path`` if given."""
    axes = {"batch": 0, "candidates": 1}
    return onnx_export.export(
        model,
        (torch.zeros(2, 7, NUM_FEATURES),),
        [INPUT_NAME],
        [OUTPUT_NAME],
        {name: {i: n for n, i in axes.items()} for name in (INPUT_NAME, OUTPUT_NAME)},
        path,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", type=Path, help="where to write model.onnx")
    args = parser.parse_args(argv)
    export_onnx(LinearScorer(), args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
