"""Item-encoder throughput through a real tritonserver, for one instance layout.

    python -m tests.bench.encoder_triton --instances 2 --threads 1 --request 32

Starts tritonserver alone (free ports) on a copy of triton_models/item_encoder with the
instance count and onnxruntime threads given, sends 1,536 ml-100k item texts from four
concurrent gRPC clients three times, and prints the median texts/s. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from models.text_encoder import item_text
from services.data import movielens
from services.stack.settings import REPO_ROOT, StackSettings
from tests.support.triton import triton_alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--request", type=int, default=32, help="texts per request")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    repo = Path(tempfile.mkdtemp())
    shutil.copytree(REPO_ROOT / "triton_models" / "item_encoder", repo / "item_encoder")
    config = repo / "item_encoder" / "config.pbtxt"
    text = config.read_text()
    text = text.replace("count: 2 }", f"count: {args.instances} }}")
    text = text.replace(
        'key: "intra_op_threads", value: { string_value: "1" }',
        f'key: "intra_op_threads", value: {{ string_value: "{args.threads}" }}',
    )
    config.write_text(text)
    texts = [item_text(i) for i in movielens.load_items(movielens.ensure_ml100k())][:1536]
    with triton_alone(repo, ("item_encoder",)) as settings:
        measure(settings, texts, args)


def measure(settings: StackSettings, texts: list[str], args: argparse.Namespace) -> None:

    def send(chunk: list[str]) -> None:
        client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
        try:
            for i in range(0, len(chunk), args.request):
                batch = np.array([[t.encode()] for t in chunk[i : i + args.request]], dtype=object)
                inp = grpcclient.InferInput("TEXT", list(batch.shape), "BYTES")
                inp.set_data_from_numpy(batch)
                client.infer("item_encoder", [inp])
        finally:
            client.close()

    send(texts[:64])  # warm-up
    rates = []
    for _ in range(3):
        workers = [
            threading.Thread(target=send, args=(texts[k :: args.clients],))
            for k in range(args.clients)
        ]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        rates.append(len(texts) / (time.perf_counter() - started))
    print(
        f"instances={args.instances} threads={args.threads} request={args.request}: "
        f"median {statistics.median(rates):.0f} texts/s (runs {[round(r) for r in rates]})"
    )


if __name__ == "__main__":
    main()
