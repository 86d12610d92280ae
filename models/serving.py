"""Run an ONNX model inside Triton's Python backend (or anywhere): numpy + onnxruntime only.

Triton's ``model.py`` files only move tensors; the logic lives here so it is
unit-tested outside Triton. Keep this module free of torch, Kafka and Feast:
Triton's Python environment has only numpy and onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass
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


# -- the ranker's served form ---------------------------------------------------------------

RANK_INPUTS = ("ITEMS", "HISTORY_IDX", "CANDIDATE_IDX", "SIDE")
RANK_OUTPUT = "SCORES"
# Rows (users) per onnxruntime call when several requests are merged: the candidate
# projection is [rows, C, d] floats, so 512 rows × 200 candidates stays near 26 MB.
MAX_MERGED_ROWS = 512


class RankRequestError(ValueError):
    """A ranking request whose tensors are inconsistent; the message says which and how."""


@dataclass(frozen=True)
class RankRequest:
    """One request to the ranker: a micro-batch of users over a set of distinct items.

    ``items`` [U, D] embeddings; ``history_idx`` [B, H] rows of ``items`` (-1 pads);
    ``candidate_idx`` [B, C] rows of ``items``; ``side`` [B, C, S] side features.
    """

    items: np.ndarray
    history_idx: np.ndarray
    candidate_idx: np.ndarray
    side: np.ndarray

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], leading_one: bool = False) -> RankRequest:
        """Checked construction; ``leading_one`` strips Triton's per-request batch axis of 1."""
        got: dict[str, np.ndarray] = {}
        for name in RANK_INPUTS:
            if name not in arrays or arrays[name] is None:
                raise RankRequestError(f"input {name} is missing")
            arr = arrays[name]
            if leading_one:
                if arr.ndim == 0 or arr.shape[0] != 1:
                    raise RankRequestError(
                        f"{name} has shape {list(arr.shape)}; send one micro-batch per "
                        "request with a leading axis of 1"
                    )
                arr = arr[0]
            got[name] = arr
        req = cls(
            items=np.ascontiguousarray(got["ITEMS"], np.float32),
            history_idx=np.ascontiguousarray(got["HISTORY_IDX"], np.int32),
            candidate_idx=np.ascontiguousarray(got["CANDIDATE_IDX"], np.int32),
            side=np.ascontiguousarray(got["SIDE"], np.float32),
        )
        req.validate()
        return req

    def validate(self) -> None:
        items, hist, cand, side = self.items, self.history_idx, self.candidate_idx, self.side
        if items.ndim != 2 or hist.ndim != 2 or cand.ndim != 2 or side.ndim != 3:
            raise RankRequestError(
                f"expected ITEMS [U, D], HISTORY_IDX [B, H], CANDIDATE_IDX [B, C], "
                f"SIDE [B, C, S]; got {list(items.shape)}, {list(hist.shape)}, "
                f"{list(cand.shape)}, {list(side.shape)}"
            )
        if hist.shape[0] != cand.shape[0] or side.shape[:2] != cand.shape:
            raise RankRequestError(
                f"batch and candidate axes disagree: HISTORY_IDX {list(hist.shape)}, "
                f"CANDIDATE_IDX {list(cand.shape)}, SIDE {list(side.shape)}"
            )
        n = items.shape[0]
        if cand.size and (n == 0 or cand.min() < 0 or cand.max() >= n):
            raise RankRequestError(f"CANDIDATE_IDX must index ITEMS rows 0..{n - 1}")
        if hist.size and (hist.min() < -1 or hist.max() >= n):
            raise RankRequestError(f"HISTORY_IDX must be -1 (padding) or 0..{n - 1}")
        if not (np.isfinite(items).all() and np.isfinite(side).all()):
            raise RankRequestError("ITEMS and SIDE must be finite")

    @property
    def rows(self) -> int:
        return int(self.candidate_idx.shape[0])


def merge_rank_requests(requests: list[RankRequest]) -> RankRequest:
    """One request holding all of ``requests``: items concatenated, indices shifted, and
    the history and candidate axes padded to the widest (history with -1, candidates
    with item 0 and zero side features; the padded scores are dropped by the caller)."""
    if len(requests) == 1:
        return requests[0]
    items = np.concatenate([r.items for r in requests], axis=0)
    rows = sum(r.rows for r in requests)
    h = max(r.history_idx.shape[1] for r in requests)
    c = max(r.candidate_idx.shape[1] for r in requests)
    s = requests[0].side.shape[2]
    history = np.full((rows, h), -1, np.int32)
    candidates = np.zeros((rows, c), np.int32)
    side = np.zeros((rows, c, s), np.float32)
    row = offset = 0
    for r in requests:
        b, rh = r.history_idx.shape
        rc = r.candidate_idx.shape[1]
        history[row : row + b, :rh] = np.where(r.history_idx >= 0, r.history_idx + offset, -1)
        candidates[row : row + b, :rc] = r.candidate_idx + offset
        side[row : row + b, :rc] = r.side
        row += b
        offset += r.items.shape[0]
    return RankRequest(items, history, candidates, side)


def run_ranker(model: OnnxModel, requests: list[RankRequest]) -> list[np.ndarray]:
    """Scores [B, C] for each request, merging requests into calls of ≤ MAX_MERGED_ROWS rows.

    Triton's dynamic batcher hands the Python backend several requests at once (ragged:
    each has its own items and widths); running them as one onnxruntime call is what
    makes many small requests cheap.
    """
    results: list[np.ndarray | None] = [None] * len(requests)
    group: list[int] = []

    def flush() -> None:
        if not group:
            return
        merged = merge_rank_requests([requests[i] for i in group])
        scores = model.run(
            {
                "ITEMS": merged.items,
                "HISTORY_IDX": merged.history_idx,
                "CANDIDATE_IDX": merged.candidate_idx,
                "SIDE": merged.side,
            }
        )[RANK_OUTPUT]
        row = 0
        for i in group:
            r = requests[i]
            width = r.candidate_idx.shape[1]
            results[i] = np.ascontiguousarray(scores[row : row + r.rows, :width], np.float32)
            row += r.rows
        group.clear()

    rows = 0
    for i, req in enumerate(requests):
        if req.rows == 0 or req.candidate_idx.shape[1] == 0:
            # Nothing to score: onnxruntime is not asked to run on an empty axis.
            results[i] = np.zeros(req.candidate_idx.shape, np.float32)
            continue
        if group and rows + req.rows > MAX_MERGED_ROWS:
            flush()
            rows = 0
        group.append(i)
        rows += req.rows
    flush()
    return [r for r in results if r is not None]
