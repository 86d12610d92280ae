"""What a model version must pass before Triton may see it.

Three checks, cheapest first, each with an error that says what to fix:

1. the model's ``config.pbtxt`` parses as Triton's ``ModelConfig`` and keeps the
   ``latest { num_versions: 1 }`` policy the release rules rely on (``layout``);
2. the files the config names are there, and the model loads in a scratch onnxruntime
   session with the inputs and outputs the config declares;
3. probe requests (seeded, shaped like the worker's) give finite scores of the right shape,
   including a user with no history (the cold path).

The same probes are the canary sent to Triton (``triton``), so what passed here on
onnxruntime is checked again on the server's own instance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from models.serving import (
    RANK_INPUTS,
    RANK_OUTPUT,
    ModelLoadError,
    OnnxModel,
    RankRequest,
)


class ModelRejected(ValueError):
    """A model version failed validation; the message says which check and why."""


def read_config(config_path: Path) -> object:
    """Parse ``config.pbtxt`` into Triton's ``ModelConfig`` message."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(config_path.read_text(), config)
    except (text_format.ParseError, OSError, UnicodeDecodeError) as exc:
        raise ModelRejected(f"{config_path} is not a valid Triton model config: {exc}") from exc
    policy = config.version_policy
    if not (policy.HasField("latest") and policy.latest.num_versions == 1):
        raise ModelRejected(
            f"{config_path}: releases need version_policy latest {{ num_versions: 1 }} "
            "(the highest published version serves; rollback retires it)"
        )
    return config


def config_json(
    config: object, name: str | None = None, parameters: dict[str, str] | None = None
) -> str:
    """The config as the JSON Triton's load API takes, optionally under another name and
    with extra string ``parameters`` (the shadow's version label)."""
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2

    copy = model_config_pb2.ModelConfig()
    copy.CopyFrom(config)
    if name is not None:
        copy.name = name
    for key, value in (parameters or {}).items():
        copy.parameters[key].string_value = value
    return json_format.MessageToJson(copy, preserving_proto_field_name=True)


def parameters(config: object) -> dict[str, str]:
    return {k: v.string_value for k, v in config.parameters.items()}  # type: ignore[attr-defined]


# -- the scorer ------------------------------------------------------------------------


def scorer_probes(dim: int, n_side: int = 4, seed: int = 0) -> list[RankRequest]:
    """Two requests like the worker's: a warm micro-batch and a user with no history."""
    rng = np.random.default_rng(seed)
    items = rng.normal(size=(24, dim)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    history = rng.integers(0, 24, size=(3, 6)).astype(np.int32)
    history[1, 3:] = -1  # a short history, padded
    warm = RankRequest(
        items=items,
        history_idx=history,
        candidate_idx=rng.integers(0, 24, size=(3, 10)).astype(np.int32),
        side=np.log1p(rng.uniform(0, 20, size=(3, 10, n_side))).astype(np.float32),
    )
    cold = RankRequest(
        items=items[:5],
        history_idx=np.full((1, 4), -1, np.int32),
        candidate_idx=np.arange(5, dtype=np.int32)[None],
        side=np.zeros((1, 5, n_side), np.float32),
    )
    return [warm, cold]


def check_scores(
    scores: Sequence[np.ndarray | None], probes: list[RankRequest], where: str
) -> None:
    for i, (out, probe) in enumerate(zip(scores, probes, strict=True)):
        want = probe.candidate_idx.shape
        if out is None or tuple(out.shape) != tuple(want):
            got = None if out is None else list(out.shape)
            raise ModelRejected(f"{where}: probe {i} returned shape {got}, expected {list(want)}")
        if not np.all(np.isfinite(out)):
            raise ModelRejected(f"{where}: probe {i} returned non-finite scores (NaN or inf)")


def _input_dims(config: object, name: str) -> list[int]:
    for inp in config.input:  # type: ignore[attr-defined]
        if inp.name == name:
            return list(inp.dims)
    raise ModelRejected(f"the config declares no input {name}")


def validate_scorer(folder: Path, config: object) -> None:
    onnx_file = folder / parameters(config).get("onnx_file", "model.onnx")
    try:
        model = OnnxModel(onnx_file, RANK_INPUTS, (RANK_OUTPUT,))
    except ModelLoadError as exc:
        raise ModelRejected(str(exc)) from exc
    dim = _input_dims(config, "ITEMS")[-1]
    n_side = _input_dims(config, "SIDE")[-1]
    probes = scorer_probes(dim, n_side)
    try:
        # One call per probe, not run_ranker's merged call: a wrong output shape must
        # reach check_scores as it is, not fail inside the merging code.
        scores = [
            model.run(
                {
                    "ITEMS": p.items,
                    "HISTORY_IDX": p.history_idx,
                    "CANDIDATE_IDX": p.candidate_idx,
                    "SIDE": p.side,
                }
            )[RANK_OUTPUT]
            for p in probes
        ]
    except Exception as exc:  # onnxruntime raises its own types for shape and type errors
        raise ModelRejected(f"{onnx_file} fails on a probe request: {exc}") from exc
    check_scores(scores, probes, str(onnx_file))


# Models with a probe. Others get the config and file checks only.
PROBES: dict[str, Callable[[Path, object], None]] = {"scorer": validate_scorer}
# What a version folder of each Python-backend model must hold besides the model file.
REQUIRED_FILES = ("model.py",)


def validate_version(folder: Path, config: object, model: str) -> None:
    """Raise :class:`ModelRejected` unless ``folder`` is a servable version of ``model``."""
    if not folder.is_dir():
        raise ModelRejected(f"{folder} is not a folder")
    backend = config.backend  # type: ignore[attr-defined]
    if backend == "python":
        for name in REQUIRED_FILES:
            if not (folder / name).is_file():
                raise ModelRejected(f"{folder} has no {name} (the Python backend runs it)")
    probe = PROBES.get(model)
    if probe is not None:
        probe(folder, config)
