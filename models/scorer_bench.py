"""Time the served LLM ranker (ONNX, onnxruntime CPU) on micro-batches shaped like the stream.

    python -m models.scorer_bench [--threads 2] [--batch 256] [--history 50] [--candidates 100]

Prints clicks/s and per-batch latency percentiles (median of repeats); a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from models.ranker import OUTPUT, SERVING_INPUTS, RankerConfig, SequenceRanker, flops_per_request
from models.ranker_export import export_onnx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--history", type=int, default=50)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--items", type=int, default=1682, help="distinct items per batch")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    import onnxruntime as ort

    cfg = RankerConfig()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scorer.onnx"
        export_onnx(SequenceRanker(cfg).eval(), path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {
        "ITEMS": rng.normal(size=(args.items, cfg.embedding_dim)).astype(np.float32),
        "HISTORY_IDX": rng.integers(0, args.items, (args.batch, args.history)).astype(np.int32),
        "CANDIDATE_IDX": rng.integers(0, args.items, (args.batch, args.candidates)).astype(
            np.int32
        ),
        "SIDE": rng.uniform(0, 3, (args.batch, args.candidates, cfg.n_side)).astype(np.float32),
    }
    assert set(feeds) == set(SERVING_INPUTS)
    session.run([OUTPUT], feeds)  # warm-up
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        session.run([OUTPUT], feeds)
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    p90 = sorted(times)[int(0.9 * (len(times) - 1))]
    flops = flops_per_request(cfg, args.history, args.candidates)
    print(
        f"batch {args.batch} x (history {args.history}, candidates {args.candidates}), "
        f"{args.items} distinct items, {args.threads} threads: median {median * 1000:.1f} ms, "
        f"p90 {p90 * 1000:.1f} ms per batch -> {args.batch / median:,.0f} clicks/s; "
        f"{flops / 1e6:.1f} MFLOP per click"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
