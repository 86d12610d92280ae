"""Compile ONNX models into TensorRT engines and write them as Triton ``tensorrt_plan`` models.

Needs an NVIDIA GPU with TensorRT 10 (``pip install tensorrt``) and torch with CUDA for the
parity check; on a machine without them it exits with a message that says so.

    python -m models.tensorrt_build scorer triton_models/scorer/2/model.onnx --repository OUT
    python -m models.tensorrt_build item_encoder_trt model_fp32.onnx --repository OUT

The engines are FP16 with one optimisation profile spanning the batch and sequence
lengths the stream uses (:data:`PROFILES`). Each build is checked against onnxruntime on
random inputs inside the profile; the report records build time, max abs error and
throughput of both.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# (min, opt, max) shape of every input. The scorer's ITEMS axis is the batch's distinct
# items; the encoder's axes are texts per request and tokens per text.
PROFILES: dict[str, dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]] = {
    "scorer": {
        "ITEMS": ((1, 384), (4096, 384), (16384, 384)),
        "HISTORY_IDX": ((1, 1), (256, 50), (512, 50)),
        "CANDIDATE_IDX": ((1, 1), (256, 100), (512, 200)),
        "SIDE": ((1, 1, 4), (256, 100, 4), (512, 200, 4)),
    },
    "item_encoder_trt": {
        "input_ids": ((1, 1), (64, 64), (256, 128)),
        "attention_mask": ((1, 1), (64, 64), (256, 128)),
    },
}
INT_INPUTS = {"HISTORY_IDX", "CANDIDATE_IDX", "input_ids", "attention_mask"}


class GpuUnavailable(RuntimeError):
    """TensorRT or a CUDA device is missing on this machine."""


@dataclass
class BuildReport:
    model: str
    build_s: float
    max_abs_diff: float
    trt_ms_per_batch: float
    onnx_cpu_ms_per_batch: float
    engine_bytes: int
    gpu: str


def _require_gpu() -> tuple[Any, Any]:
    try:
        import tensorrt as trt
        import torch
    except ImportError as exc:
        raise GpuUnavailable(
            f"TensorRT is not installed ({exc}); this command needs an NVIDIA GPU machine "
            "with `pip install tensorrt`"
        ) from exc
    if not torch.cuda.is_available():
        raise GpuUnavailable("no CUDA device is visible; TensorRT engines are built on a GPU")
    return trt, torch


def build_engine(onnx_path: Path, model: str, fp16: bool = True) -> tuple[bytes, float]:
    """Parse ONNX, apply the model's optimisation profile, build; returns (plan, seconds)."""
    trt, _ = _require_gpu()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 2 << 30)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in PROFILES[model].items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    started = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build {model} from {onnx_path}")
    return bytes(plan), time.perf_counter() - started


def probe_inputs(model: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs at the profile's optimum shapes (valid indices and token ids)."""
    shapes = {name: opt for name, (_, opt, _) in PROFILES[model].items()}
    if model == "scorer":
        n_items = shapes["ITEMS"][0]
        return {
            "ITEMS": rng.normal(size=shapes["ITEMS"]).astype(np.float32) / 20,
            "HISTORY_IDX": rng.integers(-1, n_items, size=shapes["HISTORY_IDX"]).astype(np.int32),
            "CANDIDATE_IDX": rng.integers(0, n_items, size=shapes["CANDIDATE_IDX"]).astype(
                np.int32
            ),
            "SIDE": rng.uniform(0, 3, size=shapes["SIDE"]).astype(np.float32),
        }
    ids = rng.integers(1000, 30000, size=shapes["input_ids"]).astype(np.int64)
    ids[:, 0] = 101  # [CLS]
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


def run_engine(
    plan: bytes, feeds: dict[str, np.ndarray], repeats: int = 20
) -> tuple[dict[str, np.ndarray], float]:
    """Run a plan on the GPU; returns outputs and milliseconds per call."""
    trt, torch = _require_gpu()
    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    context = engine.create_execution_context()
    tensors: dict[str, Any] = {}
    for name, array in feeds.items():
        tensors[name] = torch.from_numpy(np.ascontiguousarray(array)).cuda()
        context.set_input_shape(name, tuple(array.shape))
    outputs: dict[str, Any] = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
            shape = tuple(context.get_tensor_shape(name))
            dtype = (
                torch.float16
                if engine.get_tensor_dtype(name) == trt.DataType.HALF
                else torch.float32
            )
            outputs[name] = torch.empty(shape, dtype=dtype, device="cuda")
    for name, tensor in {**tensors, **outputs}.items():
        context.set_tensor_address(name, tensor.data_ptr())
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        context.execute_async_v3(stream.cuda_stream)  # warm-up
        stream.synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
    ms = (time.perf_counter() - started) * 1000 / repeats
    return {k: v.float().cpu().numpy() for k, v in outputs.items()}, ms


def onnx_reference(
    onnx_path: Path, feeds: dict[str, np.ndarray], repeats: int = 3
) -> tuple[dict[str, np.ndarray], float]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    out = session.run(names, feeds)
    started = time.perf_counter()
    for _ in range(repeats):
        session.run(names, feeds)
    ms = (time.perf_counter() - started) * 1000 / repeats
    return dict(zip(names, out, strict=True)), ms


def plan_config(model: str, onnx_path: Path) -> str:
    """config.pbtxt of a tensorrt_plan model with the ONNX graph's inputs and outputs."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    types = {1: "TYPE_FP32", 6: "TYPE_INT32", 7: "TYPE_INT64", 10: "TYPE_FP16"}

    def tensor(v: Any) -> str:
        dims = ", ".join("-1" for _ in v.type.tensor_type.shape.dim)
        dtype = types[v.type.tensor_type.elem_type]
        return f'  {{ name: "{v.name}", data_type: {dtype}, dims: [ {dims} ] }}'

    inputs = ",\n".join(tensor(v) for v in graph.input)
    outputs = ",\n".join(tensor(v) for v in graph.output)
    # Requests are already micro-batches (scorer) or text batches (encoder): no Triton batching.
    return (
        f'name: "{model}"\nplatform: "tensorrt_plan"\nmax_batch_size: 0\n'
        f"input [\n{inputs}\n]\noutput [\n{outputs}\n]\n"
        "instance_group [ { kind: KIND_GPU, count: 1 } ]\n"
    )


def write_plan_model(
    repository: Path, model: str, version: int, plan: bytes, onnx_path: Path
) -> Path:
    """``repository/model/config.pbtxt`` and ``repository/model/version/model.plan``, atomically."""
    folder = repository / model
    version_dir = folder / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    tmp = version_dir / "model.plan.tmp"
    tmp.write_bytes(plan)
    tmp.replace(version_dir / "model.plan")
    (folder / "config.pbtxt").write_text(plan_config(model, onnx_path))
    return version_dir / "model.plan"


def build_and_check(model: str, onnx_path: Path, repository: Path, version: int = 1) -> BuildReport:
    _, torch = _require_gpu()
    plan, build_s = build_engine(onnx_path, model)
    feeds = probe_inputs(model, np.random.default_rng(0))
    trt_out, trt_ms = run_engine(plan, feeds)
    ref_out, cpu_ms = onnx_reference(onnx_path, feeds)
    diff = max(float(np.max(np.abs(trt_out[k] - ref_out[k]))) for k in ref_out)
    write_plan_model(repository, model, version, plan, onnx_path)
    return BuildReport(
        model, build_s, diff, trt_ms, cpu_ms, len(plan), torch.cuda.get_device_name()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", choices=sorted(PROFILES))
    parser.add_argument("onnx", type=Path)
    parser.add_argument(
        "--repository", type=Path, required=True, help="Triton repository to write into"
    )
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--report", type=Path, help="write the build report as JSON here")
    args = parser.parse_args(argv)
    try:
        report = build_and_check(args.model, args.onnx, args.repository, args.version)
    except GpuUnavailable as exc:
        print(f"tensorrt_build: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(asdict(report), indent=2)
    print(text)
    if args.report:
        args.report.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
