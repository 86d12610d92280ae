"""Smoke client for the item encoder: exits non-zero unless Triton answers correctly.

    python triton_models/item_encoder/client.py --url 127.0.0.1:8000

Checks the shape, that every embedding has unit norm, and that two texts about the
same thing are closer to each other than either is to an unrelated one.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import tritonclient.http as httpclient

TEXTS = (
    "Telescope for beginners. Categories: Astronomy. See the moon's craters and Saturn's rings",
    "A guide to the night sky: galaxies, nebulae and planets through a small telescope",
    "Cast iron skillet. Categories: Kitchen, Cookware. Pre-seasoned pan for searing steaks",
)
DIM = 384


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="127.0.0.1:8000", help="Triton HTTP host:port")
    parser.add_argument("--model", default="item_encoder")
    args = parser.parse_args(argv)
    texts = np.array([[t.encode()] for t in TEXTS], dtype=np.object_)
    inp = httpclient.InferInput("TEXT", list(texts.shape), "BYTES")
    inp.set_data_from_numpy(texts)
    try:
        with httpclient.InferenceServerClient(args.url) as client:
            result = client.infer(args.model, [inp])
    except Exception as exc:
        print(f"FAIL: request to {args.url} failed: {exc}", file=sys.stderr)
        return 2
    emb = result.as_numpy("EMBEDDING")
    if emb is None or emb.shape != (len(TEXTS), DIM):
        print(f"FAIL: shape {None if emb is None else emb.shape} != {(len(TEXTS), DIM)}")
        return 1
    norms = np.linalg.norm(emb, axis=1)
    if np.max(np.abs(norms - 1.0)) > 1e-3:
        print(f"FAIL: norms {norms.round(4).tolist()} are not 1")
        return 1
    related = float(emb[0] @ emb[1])
    unrelated = max(float(emb[0] @ emb[2]), float(emb[1] @ emb[2]))
    if related <= unrelated + 0.1:
        print(f"FAIL: related texts cosine {related:.3f} not above unrelated {unrelated:.3f}")
        return 1
    version = result.get_response()["model_version"]
    print(
        f"OK: {args.model} v{version} embedded {len(TEXTS)} texts; "
        f"cosine related {related:.3f} > unrelated {unrelated:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
