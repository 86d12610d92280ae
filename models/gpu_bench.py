"""Time the item encoder and the ranker on a GPU, beside their CPU numbers.

    python -m models.gpu_bench --minilm DIR --ranker triton_models/scorer/1/ranker.safetensors

It first reports what the machine offers for the production GPU path (TensorRT, the
onnxruntime providers); where TensorRT is installed, ``python -m models.tensorrt_build``
is the command that compiles the engines. Then it times both models in torch on CUDA,
fp32 and fp16, at the stream's shapes (encoder: 64 texts of 32 and 128 tokens; ranker:
a micro-batch of 256 users × 50 history items × 100 candidates), the ranker in fp16 also
replayed as one CUDA graph, and checks fp16 against fp32 on the CPU: cosine for the
encoder, max abs difference for the ranker.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def probe() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    try:
        import tensorrt

        info["tensorrt"] = tensorrt.__version__
    except ImportError as exc:
        info["tensorrt"] = f"not installed ({exc})"
    try:
        import onnxruntime

        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        info["onnxruntime_providers"] = None
    return info


def _time(fn: Any, repeats: int, cuda: bool) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` runs after two warm-ups."""
    for _ in range(2):
        fn()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def bench_encoder(model_dir: Path, repeats: int) -> dict[str, Any]:
    from models.text_encoder import load_encoder

    cpu = load_encoder(model_dir).float().eval()
    gpu32 = load_encoder(model_dir).float().eval().cuda()
    gpu16 = load_encoder(model_dir).half().eval().cuda()
    out: dict[str, Any] = {}
    rng = np.random.default_rng(0)
    for length in (32, 128):
        ids = torch.from_numpy(rng.integers(1000, 29000, size=(64, length)))
        ids[:, 0] = 101
        mask = torch.ones_like(ids)
        with torch.no_grad():
            ref = cpu(ids, mask)
            g_ids, g_mask = ids.cuda(), mask.cuda()
            fp16 = gpu16(g_ids, g_mask).float().cpu()
            cosine = torch.nn.functional.cosine_similarity(fp16, ref, dim=-1)
            # Each lambda is timed before the loop moves on, so late binding is harmless.
            ms32 = _time(lambda: gpu32(g_ids, g_mask), repeats, True)  # noqa: B023
            ms16 = _time(lambda: gpu16(g_ids, g_mask), repeats, True)  # noqa: B023
            ms_cpu = _time(lambda: cpu(ids, mask), 3, False)  # noqa: B023
        out[f"len{length}"] = {
            "batch": 64,
            "gpu_fp32_ms": round(ms32, 3),
            "gpu_fp16_ms": round(ms16, 3),
            "cpu_fp32_torch_ms": round(ms_cpu, 1),
            "gpu_fp16_texts_per_s": round(64 / ms16 * 1000),
            "fp16_min_cosine_vs_cpu_fp32": round(float(cosine.min()), 5),
        }
    return out


def _captured(model: Any, inputs: list[torch.Tensor]) -> tuple[Any, torch.Tensor]:
    """``model(*inputs)`` captured as a CUDA graph (after warm-ups on a side stream, as
    capture requires), and the output tensor each replay rewrites."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            model(*inputs)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = model(*inputs)
    graph.replay()
    torch.cuda.synchronize()
    return graph, out


def bench_ranker(checkpoint: Path, repeats: int) -> dict[str, Any]:
    from models.ranker import IndexedRanker
    from models.ranker_training import RankerRecommender

    cpu = IndexedRanker(RankerRecommender.load_model(checkpoint)).eval()
    gpu32 = IndexedRanker(RankerRecommender.load_model(checkpoint)).eval().cuda()
    gpu16 = IndexedRanker(RankerRecommender.load_model(checkpoint)).eval().half().cuda()
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for users in (1, 256, 1024):
        n_items = min(4096, users * 150)
        items = torch.from_numpy(rng.normal(size=(n_items, 384)).astype(np.float32) / 20)
        hist = torch.from_numpy(rng.integers(0, n_items, size=(users, 50)).astype(np.int32))
        cand = torch.from_numpy(rng.integers(0, n_items, size=(users, 100)).astype(np.int32))
        side = torch.from_numpy(rng.uniform(0, 3, size=(users, 100, 4)).astype(np.float32))
        g = [t.cuda() for t in (items, hist, cand, side)]
        g16 = [g[0].half(), g[1], g[2], g[3].half()]
        with torch.no_grad():
            ref = cpu(items, hist, cand, side)
            diff = float((gpu16(*g16).float().cpu() - ref).abs().max())
            diff32 = float((gpu32(*g).cpu() - ref).abs().max())
            ms32 = _time(lambda: gpu32(*g), repeats, True)  # noqa: B023  # timed at once
            ms16 = _time(lambda: gpu16(*g16), repeats, True)  # noqa: B023
            ms_cpu = _time(lambda: cpu(items, hist, cand, side), 3, False)  # noqa: B023
            graph16, graph_out = _captured(gpu16, g16)
            graph_diff = float((graph_out.float().cpu() - ref).abs().max())
            ms_graph16 = _time(graph16.replay, repeats, True)
        out[f"users{users}"] = {
            "gpu_fp32_ms": round(ms32, 3),
            "gpu_fp16_ms": round(ms16, 3),
            "cpu_fp32_torch_ms": round(ms_cpu, 2),
            "gpu_fp16_users_per_s": round(users / ms16 * 1000),
            "gpu_fp32_users_per_s": round(users / ms32 * 1000),
            # One CUDA graph replay per call: the kernels without a launch each from
            # Python, what TensorRT's engines (or Triton's CUDA-graph option) also remove.
            "gpu_fp16_cuda_graph_ms": round(ms_graph16, 3),
            "gpu_fp16_cuda_graph_users_per_s": round(users / ms_graph16 * 1000),
            "fp16_cuda_graph_max_abs_diff_vs_cpu_fp32": round(graph_diff, 5),
            "fp16_max_abs_diff_vs_cpu_fp32": round(diff, 5),
            "fp32_max_abs_diff_vs_cpu_fp32": round(diff32, 6),
            "score_range": [round(float(ref.min()), 3), round(float(ref.max()), 3)],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minilm", type=Path, help="MiniLM folder (default: the wheel's)")
    parser.add_argument("--ranker", type=Path, required=True, help="ranker .safetensors")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"probe": probe()}
    print(json.dumps(report["probe"], indent=2), flush=True)
    if not torch.cuda.is_available():
        print("gpu_bench: no CUDA device is visible", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 in the parity numbers
    report["ranker"] = bench_ranker(args.ranker, args.repeats)
    print(json.dumps(report["ranker"], indent=2), flush=True)
    from models.text_encoder import minilm_path

    report["encoder"] = bench_encoder(args.minilm or minilm_path(), args.repeats)
    print(json.dumps(report["encoder"], indent=2), flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
