"""One micro-batch's feature writes on Feast's online stores: what a worker's batch waits for.

    python -m tests.bench.feast_push [--rows 10,256] [--pushes 40] [--backends sqlite,redis]

For each backend and batch size: the median milliseconds of one push of user rows and one
of item-activity rows (the worker's two writes per micro-batch), each to keys already in
the store (the steady state: the latest-event guard reads them first). Offline log on, as
in the worker. Redis at STREAMREC_FEAST_REDIS_URL (default 127.0.0.1:6379; `.ci/services`
starts it). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from services.features import FeastFeatureStore
from services.features.model import ItemActivityFeatures, UserFeatures
from services.features.settings import FeatureSettings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def users(n: int, k: int, rng: np.random.Generator) -> list[UserFeatures]:
    return [
        UserFeatures(
            user_id=f"u{i}",
            event_ts=T0 + timedelta(seconds=k),
            click_count=k,
            last_item_id="i1",
            recent_items=tuple(f"i{j}" for j in range(50)),
            segment=1,
            clicks_1h=1,
            clicks_24h=2,
            embedding=tuple(rng.random(384, np.float32).tolist()),
        )
        for i in range(n)
    ]


def items(n: int, k: int) -> list[ItemActivityFeatures]:
    return [
        ItemActivityFeatures(
            item_id=f"i{i}",
            event_ts=T0 + timedelta(seconds=k),
            popularity=k,
            popularity_1h=1,
            popularity_24h=2,
            trending=1.5,
            covisited=tuple(f"i{j}" for j in range(20)),
        )
        for i in range(n)
    ]


def measure(backend: str, n: int, pushes: int) -> tuple[float, float]:
    settings = FeatureSettings(
        online_store=backend,  # type: ignore[arg-type]
        data_dir=Path(tempfile.mkdtemp(prefix="streamrec-feast-bench-")),
        project=f"b{uuid.uuid4().hex[:12]}",
    )
    store = FeastFeatureStore(settings)
    rng = np.random.default_rng(0)
    user_ms, item_ms = [], []
    try:
        for k in range(pushes + 5):
            u, i = users(n, k, rng), items(n, k)
            started = time.perf_counter()
            store.push_user_features(u)
            middle = time.perf_counter()
            store.push_item_activity(i)
            ended = time.perf_counter()
            if k >= 5:  # the first pushes create the rows and warm Feast's caches
                user_ms.append((middle - started) * 1000)
                item_ms.append((ended - middle) * 1000)
    finally:
        store.close()
    return float(np.median(user_ms)), float(np.median(item_ms))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", default="10,256", help="rows per push, comma-separated")
    parser.add_argument("--pushes", type=int, default=40)
    parser.add_argument("--backends", default="sqlite,redis")
    args = parser.parse_args()
    print("| backend | rows per push | user push median ms | item-activity push median ms |")
    print("|---|---:|---:|---:|")
    for backend in args.backends.split(","):
        for n in (int(r) for r in args.rows.split(",")):
            user, item = measure(backend, n, args.pushes)
            print(f"| {backend} | {n} | {user:.1f} | {item:.1f} |")


if __name__ == "__main__":
    main()
