"""Smoke client for the scorer: exits non-zero unless Triton answers correctly.

    python triton_models/scorer/client.py --url 127.0.0.1:8000

Sends three requests of different shapes at once (so the dynamic batcher may merge
them) and compares each answer with the same version's model.onnx run locally in
onnxruntime; a malformed request must get an error while the model keeps serving.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient

HERE = Path(__file__).resolve().parent
INPUTS = ("ITEMS", "HISTORY_IDX", "CANDIDATE_IDX", "SIDE")


def make_request(rng: np.random.Generator, users: int, items: int, h: int, c: int) -> list:
    hist = rng.integers(-1, items, size=(1, users, h)).astype(np.int32)
    return [
        (rng.normal(size=(1, items, 384)) / 20).astype(np.float32),
        hist,
        rng.integers(0, items, size=(1, users, c)).astype(np.int32),
        rng.uniform(0, 3, size=(1, users, c, 4)).astype(np.float32),
    ]


def _inputs(arrays: list) -> list:
    inputs = []
    for name, arr in zip(INPUTS, arrays, strict=True):
        inp = httpclient.InferInput(
            name, list(arr.shape), "INT32" if arr.dtype == np.int32 else "FP32"
        )
        inp.set_data_from_numpy(arr)
        inputs.append(inp)
    return inputs


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="127.0.0.1:8000", help="Triton HTTP host:port")
    parser.add_argument("--model", default="scorer")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    requests = [make_request(rng, *s) for s in ((4, 60, 10, 25), (1, 30, 3, 100), (2, 5, 1, 2))]
    client = httpclient.InferenceServerClient(args.url, concurrency=len(requests))
    try:
        # async_infer sends all three before waiting: they reach the batcher together.
        pending = [client.async_infer(args.model, _inputs(r)) for r in requests]
        results = [p.get_result() for p in pending]
    except Exception as exc:
        print(f"FAIL: request to {args.url} failed: {exc}", file=sys.stderr)
        return 2
    version = results[0].get_response()["model_version"]
    session = ort.InferenceSession(str(HERE / version / "model.onnx"))
    worst = 0.0
    for arrays, result in zip(requests, results, strict=True):
        expected = session.run(["SCORES"], {n: a[0] for n, a in zip(INPUTS, arrays, strict=True)})[
            0
        ]
        scores = result.as_numpy("SCORES")
        if scores is None or scores.shape != (1, *expected.shape):
            print(
                f"FAIL: shape {None if scores is None else scores.shape} != {(1, *expected.shape)}"
            )
            return 1
        worst = max(worst, float(np.max(np.abs(scores[0] - expected))))
    if worst > 1e-4:
        print(f"FAIL: max abs error {worst:.2e} > 1e-4")
        return 1
    bad = make_request(rng, 1, 5, 2, 3)
    bad[2][0, 0, 0] = 99  # a candidate index past ITEMS
    try:
        client.infer(args.model, _inputs(bad))
        print("FAIL: a candidate index out of range was accepted")
        return 1
    except Exception as exc:
        if "CANDIDATE_IDX" not in str(exc):
            print(f"FAIL: unclear error for a bad request: {exc}")
            return 1
    print(
        f"OK: {args.model} v{version} answered 3 concurrent requests, max abs error {worst:.1e}; "
        "a malformed request was refused with its reason"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
