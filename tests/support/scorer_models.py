"""Scorer model files for release tests: a working ranker-shaped graph and broken ones.

Built with ``onnx.helper`` in milliseconds, so tests need not train or export a ranker.
Each takes the scorer's four inputs; they differ in what SCORES is:

- ``side_sum``: SCORES[b, c] = sum of SIDE[b, c, :] × ``scale`` — finite, right shape;
  ``scale`` tells versions apart in a test.
- ``nan``: the same shape, all NaN.
- ``wrong_shape``: SCORES[b] (one score per user instead of per candidate).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _graph(kind: str, scale: float) -> bytes:
    import onnx
    from onnx import TensorProto, helper

    inputs = [
        helper.make_tensor_value_info("ITEMS", TensorProto.FLOAT, ["items", 384]),
        helper.make_tensor_value_info("HISTORY_IDX", TensorProto.INT32, ["batch", "history"]),
        helper.make_tensor_value_info("CANDIDATE_IDX", TensorProto.INT32, ["batch", "cands"]),
        helper.make_tensor_value_info("SIDE", TensorProto.FLOAT, ["batch", "cands", 4]),
    ]
    axes = [1, 2] if kind == "wrong_shape" else [2]
    value = float("nan") if kind == "nan" else scale
    nodes = [
        helper.make_node(
            "Constant",
            [],
            ["axes"],
            value=helper.make_tensor("axes", TensorProto.INT64, [len(axes)], axes),
        ),
        helper.make_node("ReduceSum", ["SIDE", "axes"], ["summed"], keepdims=0),
        helper.make_node(
            "Constant",
            [],
            ["scale"],
            value=helper.make_tensor("scale", TensorProto.FLOAT, [], [value]),
        ),
        helper.make_node("Mul", ["summed", "scale"], ["SCORES"]),
    ]
    shape = ["batch"] if kind == "wrong_shape" else ["batch", "cands"]
    output = helper.make_tensor_value_info("SCORES", TensorProto.FLOAT, shape)
    graph = helper.make_graph(nodes, f"scorer_{kind}", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by the onnxruntime in Triton's Python backend too
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def write_scorer(folder: Path, kind: str = "side_sum", scale: float = 1.0) -> Path:
    """A version folder holding ``model.onnx`` of the given kind; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "garbage":
        (folder / "model.onnx").write_bytes(b"this is not an ONNX model\x00\x01" * 40)
    else:
        (folder / "model.onnx").write_bytes(_graph(kind, scale))
    return folder


def scorer_repository(root: Path, scale: float = 1.0) -> Path:
    """A model repository at ``root``: the committed scorer config and model.py, with a
    ``side_sum`` model as version 1 (no checkpoint: a retraining starts from scratch)."""
    import shutil

    repo = Path(__file__).resolve().parents[2]
    (root / "scorer").mkdir(parents=True)
    shutil.copy(repo / "triton_models/scorer/config.pbtxt", root / "scorer")
    write_scorer(root / "scorer" / "1", scale=scale)
    shutil.copy(repo / "triton_models/scorer/1/model.py", root / "scorer" / "1")
    return root


def expected_scores(side: np.ndarray, scale: float) -> np.ndarray:
    return side.sum(axis=-1) * scale
