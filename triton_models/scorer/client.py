"""Smoke client for the scorer: exits non-zero unless Triton answers correctly.

    python triton_models/scorer/client.py --url 127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import tritonclient.http as httpclient

# Known inputs and the baseline weights (models/candidate_features.py): score = x · w.
WEIGHTS = np.array([1.0, 0.15, 0.35], np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="127.0.0.1:8000", help="Triton HTTP host:port")
    parser.add_argument("--model", default="scorer")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    features = rng.uniform(0, 3, size=(4, 25, 3)).astype(np.float32)
    client = httpclient.InferenceServerClient(args.url)
    inp = httpclient.InferInput("FEATURES", list(features.shape), "FP32")
    inp.set_data_from_numpy(features)
    try:
        result = client.infer(args.model, [inp])
    except Exception as exc:
        print(f"FAIL: request to {args.url} failed: {exc}", file=sys.stderr)
        return 2
    scores = result.as_numpy("SCORES")
    expected = features @ WEIGHTS
    if scores is None or scores.shape != expected.shape:
        print(f"FAIL: shape {None if scores is None else scores.shape} != {expected.shape}")
        return 1
    err = float(np.max(np.abs(scores - expected)))
    if err > 1e-4:
        print(f"FAIL: max abs error {err:.2e} > 1e-4")
        return 1
    version = result.get_response()["model_version"]
    print(f"OK: {args.model} v{version} scored {scores.size} candidates, max abs error {err:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
