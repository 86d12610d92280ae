"""Export the sequence ranker to ONNX (dynamic batch, history and candidate axes).

python -m models.ranker_export CHECKPOINT.safetensors OUT/model.onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from models import onnx_export
from models.ranker import OUTPUT, SERVING_INPUTS, IndexedRanker, SequenceRanker


def example_inputs(
    model: SequenceRanker, batch: int = 2, history: int = 7, candidates: int = 11, items: int = 13
) -> tuple[torch.Tensor, ...]:
    """Inputs of the served (indexed) form, with some history padding."""
    cfg = model.cfg
    history_idx = torch.randint(0, items, (batch, history), dtype=torch.int32)
    history_idx[0, history // 2 :] = -1
    return (
        torch.randn(items, cfg.embedding_dim),
        history_idx,
        torch.randint(0, items, (batch, candidates), dtype=torch.int32),
        torch.randn(batch, candidates, cfg.n_side),
    )


def export_onnx(model: SequenceRanker, path: Path | None = None) -> bytes:
    """The served form (:class:`IndexedRanker`) as ONNX, dynamic on every axis."""
    model.eval()
    axes = {
        "ITEMS": {0: "items"},
        "HISTORY_IDX": {0: "batch", 1: "history"},
        "CANDIDATE_IDX": {0: "batch", 1: "candidates"},
        "SIDE": {0: "batch", 1: "candidates"},
        OUTPUT: {0: "batch", 1: "candidates"},
    }
    return onnx_export.export(
        IndexedRanker(model), example_inputs(model), SERVING_INPUTS, [OUTPUT], axes, path
    )


def main(argv: list[str] | None = None) -> int:
    from models.ranker_training import RankerRecommender

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("output", type=Path)
    args = parser.parse_args(argv)
    export_onnx(RankerRecommender.load_model(args.checkpoint), args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
