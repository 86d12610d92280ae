"""One ONNX export path for every model: the legacy exporter, dynamic axes, atomic write."""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

OPSET = 17


def export(
    model: nn.Module,
    example: tuple[torch.Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
    path: Path | None = None,
) -> bytes:
    """Export ``model`` (in eval mode) and return the bytes; write them to ``path`` atomically.

    The TorchScript exporter is deprecated in favour of dynamo, which needs onnxscript (not
    installed, and it pulls in more than we want); our graphs have no data-dependent control
    flow, so both exporters produce the same graph. Its deprecation and tracer warnings are
    silenced here, once.
    """
    model.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            model,
            example,
            buf,  # type: ignore[arg-type]  # the exporter writes to any binary file object
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    data = buf.getvalue()
    if path is not None:
        write_atomically(path, data)
    return data


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a sibling temporary file, then rename: readers never see a partial model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
