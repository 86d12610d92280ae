"""Scorer (the LLM ranker) throughput and latency through a real tritonserver.

    python -m tests.bench.scorer_triton --users 1 --clients 32 --requests 3000

Starts tritonserver alone (free ports) with the committed ``scorer``, then sends requests
of ``--users`` users × 50 history items × 100 candidates (distinct items sent once per
request, as the worker does) from ``--clients`` concurrent gRPC streams on one event loop,
three runs. Prints the median requests/s, users/s and p50/p99 latency. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import numpy as np
import tritonclient.grpc.aio as grpcclient

from services.stack.settings import REPO_ROOT
from tests.support.triton import triton_alone

INPUTS = ("ITEMS", "HISTORY_IDX", "CANDIDATE_IDX", "SIDE")


def make_inputs(rng: np.random.Generator, users: int) -> list[grpcclient.InferInput]:
    n_items = min(4096, 150 * users)
    arrays = [
        (rng.normal(size=(1, n_items, 384)) / 20).astype(np.float32),
        rng.integers(0, n_items, size=(1, users, 50)).astype(np.int32),
        rng.integers(0, n_items, size=(1, users, 100)).astype(np.int32),
        rng.uniform(0, 3, size=(1, users, 100, 4)).astype(np.float32),
    ]
    inputs = []
    for name, arr in zip(INPUTS, arrays, strict=True):
        inp = grpcclient.InferInput(
            name, list(arr.shape), "INT32" if arr.dtype == np.int32 else "FP32"
        )
        inp.set_data_from_numpy(arr)
        inputs.append(inp)
    return inputs


async def run(url: str, users: int, clients: int, total: int) -> tuple[float, list[float]]:
    rng = np.random.default_rng(0)
    # A pool of prepared requests: the client's own numpy work is not what is measured.
    pool = [make_inputs(rng, users) for _ in range(16)]
    client = grpcclient.InferenceServerClient(url)
    latencies: list[float] = []
    remaining = total

    async def stream(k: int) -> None:
        nonlocal remaining
        i = k
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await client.infer("scorer", pool[i % len(pool)])
            latencies.append((time.perf_counter() - started) * 1000)
            i += clients

    await asyncio.gather(*(stream(k) for k in range(min(clients, 8))))  # warm-up
    latencies.clear()
    remaining = total
    started = time.perf_counter()
    await asyncio.gather(*(stream(k) for k in range(clients)))
    elapsed = time.perf_counter() - started
    await client.close()
    return total / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1, help="users per request")
    parser.add_argument("--clients", type=int, default=32, help="requests in flight")
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    with triton_alone(REPO_ROOT / "triton_models", ("scorer",)) as settings:
        results = [
            asyncio.run(run(settings.triton_grpc_url, args.users, args.clients, args.requests))
            for _ in range(3)
        ]
    rates = [r for r, _ in results]
    lat = sorted(x for _, ls in results for x in ls)
    rate = statistics.median(rates)
    print(
        f"users/request={args.users} clients={args.clients}: median {rate:.0f} requests/s "
        f"= {rate * args.users:.0f} users/s (runs {[round(r) for r in rates]}); "
        f"latency p50 {lat[len(lat) // 2]:.1f} ms, p99 {lat[int(len(lat) * 0.99)]:.1f} ms"
    )


if __name__ == "__main__":
    main()
