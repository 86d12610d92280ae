"""The worker's Python per click, without Kafka or Triton: ``RecommenderCore.process``.

    python -m tests.bench.pipeline_hot_path [--clicks 6000] [--batch 64] [--profile]

Replays ml-100k clicks in micro-batches through an in-memory core (random unit item
embeddings, the numpy fallback scorer) and prints the median and p90 milliseconds per
batch after the first 20 batches. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time

import numpy as np
from threadpoolctl import threadpool_limits

from services.data import movielens
from services.recommender.app import in_memory_core
from services.recommender.pipeline import Click


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clicks", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    args = parser.parse_args()
    threadpool_limits(limits=1, user_api="blas")  # as the worker does (its __main__)
    path = movielens.ensure_ml100k()
    items, clicks = movielens.load_items(path), movielens.load_clicks(path)[: args.clicks]
    core = in_memory_core()
    rng = np.random.default_rng(0)
    for item in items:
        core.embeddings.upsert(item.item_id, rng.normal(size=384).astype(np.float32))
        core.catalog.upsert(item)
    batches = [clicks[i : i + args.batch] for i in range(0, len(clicks), args.batch)]

    cpu: list[float] = []

    async def replay() -> list[float]:
        times = []
        for batch in batches:
            started, cpu_started = time.perf_counter(), time.process_time()
            await core.process([Click(c, 0, time.monotonic()) for c in batch])
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
        return times

    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    times = asyncio.run(replay())[20:]
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    median = float(np.median(times))
    print(
        f"{args.batch}-click batches: median {median:.1f} ms ({median / args.batch:.2f} ms/click), "
        f"p90 {np.percentile(times, 90):.1f} ms; CPU time median "
        f"{np.median(cpu[20:]) / args.batch:.2f} ms/click (the machine is shared: CPU time "
        "is the steadier figure)"
    )


if __name__ == "__main__":
    main()
