"""Run an ONNX model inside Triton's Python backend (or anywhere): numpy + onnxruntime only.

Triton's ``model.py`` files only move tensors; the logic lives here so it is
unit-tested outside Triton. Keep this module free of torch, Kafka and Feast:
Triton's Python environment has only numpy and onnxruntime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class ModelLoadError(RuntimeError):
    """A model file is missing, unreadable or not a valid ONNX graph."""


class OnnxModel:
    """A thread-safe onnxruntime session with the input/output names checked at load time."""

    def __init__(
        self,
        path: Path,
        input_names: tuple[str, ...],
        output_names: tuple[str, ...],
        intra_op_threads: int = 1,
    ) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise ModelLoadError(f"model file {path} does not exist")
        opts = ort.SessionOptions()
        # One thread per instance: Triton scales with instance_group count, and
        # oversubscribing 2 cores with intra-op threads only adds contention.
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises several unrelated types
            raise ModelLoadError(f"cannot load {path} as ONNX: {exc}") from exc
        have_in = {i.name for i in self.session.get_inputs()}
        have_out = {o.name for o in self.session.get_outputs()}
        if set(input_names) - have_in or set(output_names) - have_out:
            raise ModelLoadError(
                f"{path} has inputs {sorted(have_in)} and outputs {sorted(have_out)}; "
                f"expected inputs {list(input_names)} and outputs {list(output_names)}"
            )
        self.output_names = list(output_names)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs: list[Any] = self.session.run(self.output_names, inputs)
        return dict(zip(self.output_names, outputs, strict=True))


def run_grouped(
    model: OnnxModel, name: str, arrays: list[np.ndarray], output: str
) -> list[np.ndarray]:
    """Run several requests' inputs, one session call per group of equal trailing shape.

    Triton hands the Python backend a list of requests; requests whose shapes agree
    are concatenated so the model runs once per group rather than once per request.
    """
    results: list[np.ndarray | None] = [None] * len(arrays)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, arr in enumerate(arrays):
        groups.setdefault(tuple(arr.shape[1:]), []).append(i)
    for idxs in groups.values():
        batch = np.concatenate([arrays[i] for i in idxs], axis=0)
        out = model.run({name: batch})[output]
        start = 0
        for i in idxs:
            n = arrays[i].shape[0]
            results[i] = out[start : start + n]
            start += n
    return [r for r in results if r is not None]
