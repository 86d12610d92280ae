"""The worker's Python per click, without Kafka or Triton: ``RecommenderCore.process``.

    python -m tests.bench.pipeline_hot_path [--clicks 6000] [--batch 64] [--profile]
        [--shadow-share 0.2] [--gc-young-threshold 0]

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

from services.data import movielens
from services.recommender.app import in_memory_core
from services.recommender.gcpause import young_threshold
from services.recommender.pipeline import Click, RecommenderCore
from services.recommender.scorer import LinearScorer
from services.recommender.settings import WorkerSettings
from services.recommender.shadow import ShadowLane
from services.recommender.threads import limit_native_threads
from services.recommender.timing import StageTimes


class _AlwaysThere:
    async def active_version(self) -> str | None:
        return "bench:challenger"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clicks", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    parser.add_argument(
        "--shadow-share",
        type=float,
        default=0.0,
        help="also run with a shadow lane ranking this share of users; prints both",
    )
    parser.add_argument(
        "--gc-young-threshold",
        type=int,
        default=WorkerSettings().gc_young_threshold,
        help="as the worker's STREAMREC_GC_YOUNG_THRESHOLD (0: Python's own 700)",
    )
    args = parser.parse_args()
    limit_native_threads(1)  # as the worker does (create_app)
    if args.gc_young_threshold:
        young_threshold(args.gc_young_threshold)
    path = movielens.ensure_ml100k()
    items, clicks = movielens.load_items(path), movielens.load_clicks(path)[: args.clicks]
    batches = [clicks[i : i + args.batch] for i in range(0, len(clicks), args.batch)]

    def build(shadow_share: float) -> RecommenderCore:
        core = in_memory_core()
        rng = np.random.default_rng(0)
        for item in items:
            core.embeddings.upsert(item.item_id, rng.normal(size=384).astype(np.float32))
            core.catalog.upsert(item)
        if shadow_share > 0:
            # The same numpy scorer in both lanes: what is measured is the worker's own
            # shadow work (subset, MMR, state), not a second Triton call.
            core.shadow = ShadowLane(LinearScorer(), _AlwaysThere(), shadow_share)
            asyncio.run(core.shadow.refresh())
        return core

    def measure(core: RecommenderCore, profile: bool) -> tuple[float, float, float, float]:
        cpu: list[float] = []
        stages = StageTimes(window=len(batches))

        async def replay() -> list[float]:
            times = []
            for n, batch in enumerate(batches):
                started, cpu_started = time.perf_counter(), time.process_time()
                result = await core.process([Click(c, 0, time.monotonic()) for c in batch])
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - cpu_started) * 1000)
                if n >= 20:
                    stages.record(result.timer, len(batch))
            return times

        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        times = asyncio.run(replay())[20:]
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        summary = stages.summary()
        per_click = {
            name: row["per_click_ms"] for name, row in summary.items() if name != "batch_size"
        }
        print(
            "ms per click by stage (all batches after the first 20): "
            + ", ".join(f"{name} {ms:.3f}" for name, ms in sorted(per_click.items()))
        )
        return (
            float(np.median(times)),
            float(np.percentile(times, 90)),
            float(np.median(cpu[20:])),
            float(np.mean(cpu[20:])),
        )

    runs = [("served lane only", 0.0)]
    if args.shadow_share > 0:
        runs.append((f"with a shadow lane for {args.shadow_share:.0%} of users", args.shadow_share))
    cpu_per_click = []
    for label, share in runs:
        median, p90, cpu, cpu_mean = measure(build(share), args.profile)
        cpu_per_click.append(cpu / args.batch)
        print(
            f"{label}: {args.batch}-click batches: median {median:.1f} ms "
            f"({median / args.batch:.2f} ms/click), p90 {p90:.1f} ms; CPU time median "
            f"{cpu / args.batch:.2f} ms/click, mean {cpu_mean / args.batch:.2f} ms/click "
            "(the machine is shared: CPU time is the steadier figure; the mean is what "
            "sets throughput)"
        )
    if len(cpu_per_click) == 2:
        print(f"shadow lane: {cpu_per_click[1] / cpu_per_click[0]:.2f}x the CPU time per click")


if __name__ == "__main__":
    main()
