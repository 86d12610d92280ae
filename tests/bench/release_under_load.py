"""A scorer release under load through the whole stack: failures, losses and p99.

    python -m tests.bench.release_under_load [--rate 200] [--clicks 4000] [--runs 2]

Starts the embedded stack (ports from ``STREAMREC_`` variables) on a scratch copy of
``triton_models/`` (so the checkout's repository is untouched), loads the ml-100k
catalog, warms up with 2,000 clicks, then ``--runs`` times over:

1. **steady**: ``--clicks`` clicks at ``--rate``/s, no release;
2. **release**: the same, with ``streamrec deploy``'s release path (validate, canary,
   publish, load) started two seconds in, deploying the committed ranker as a new version.

Reported per stream: clicks lost, recommendations marked degraded (the worker's
breaker opened, i.e. a scorer request failed or timed out), Triton's own count of
failed ``scorer`` requests (its metrics endpoint), model versions seen, and e2e p50/p99
over the whole stream and over the swap window (clicks sent between the release's start
and one second after it returned). A benchmark, not a test: results go to
docs/BENCHMARKS.md by hand with the command.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from services.contract.events import CLICKS, ITEMS, RECOMMENDATIONS, ClickEvent
from services.data import movielens
from services.eval.warmup_model import _link_or_copy
from services.eval.workers import WorkerProbe, wait_for_catalog
from services.kafka.io import produce_events
from services.kafka.settings import KafkaSettings
from services.stack.control import down, up_detached
from services.stack.settings import REPO_ROOT, StackSettings
from services.trainer.layout import ModelFolder
from services.trainer.release import Releaser
from services.trainer.triton import TritonControl
from tests.bench.stack_load import listen_from_end, relabel


def failed_requests(settings: StackSettings) -> int:
    """Triton's cumulative failed inference requests of every ``scorer`` version."""
    text = httpx.get(f"http://{settings.host}:{settings.triton_metrics_port}/metrics").text
    pattern = r'^nv_inference_request_failure\{[^}]*model="scorer"[^}]*\} (\d+)'
    return sum(int(m) for m in re.findall(pattern, text, re.M))


def stream(
    kafka: KafkaSettings,
    clicks: list[ClickEvent],
    rate: float,
    release: Any = None,
    release_after_s: float = 2.0,
) -> dict[str, Any]:
    reader = listen_from_end(kafka, RECOMMENDATIONS)
    sent_at: dict[str, float] = {}
    window: list[float] = []
    outcome: dict[str, Any] = {}

    def send() -> None:
        def stamped() -> Any:
            for ev in clicks:
                sent_at[ev.event_id] = time.monotonic()
                yield ev

        produce_events(kafka, CLICKS, stamped(), rate=rate)

    def swap() -> None:
        time.sleep(release_after_s)
        window.append(time.monotonic())
        try:
            done = release()
            outcome.update(version=done.version, seconds=round(done.seconds, 2))
        except Exception as exc:  # reported in the row and fails the run
            outcome.update(error=f"{type(exc).__name__}: {exc}")
        window.append(time.monotonic() + 1.0)

    threads = [threading.Thread(target=send, daemon=True)]
    if release is not None:
        threads.append(threading.Thread(target=swap, daemon=True))
    for t in threads:
        t.start()
    latency: dict[str, float] = {}
    versions: Counter[str] = Counter()
    degraded = 0
    deadline = time.monotonic() + len(clicks) / rate + 120
    try:
        while len(latency) < len(clicks) and time.monotonic() < deadline:
            msg = reader.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            value = json.loads(msg.value() or b"{}")
            eid = value.get("event_id")
            if eid not in sent_at or eid in latency:
                continue
            latency[eid] = (time.monotonic() - sent_at[eid]) * 1000.0
            versions[value.get("model_version", "?")] += 1
            degraded += bool(value.get("degraded"))
    finally:
        reader.close()
        for t in threads:
            t.join(timeout=120)
    all_ms = np.asarray(list(latency.values()))
    out: dict[str, Any] = {
        "sent": len(clicks),
        "lost": len(clicks) - len(latency),
        "degraded": degraded,
        "versions": dict(versions),
        "e2e_p50_ms": round(float(np.percentile(all_ms, 50)), 1),
        "e2e_p99_ms": round(float(np.percentile(all_ms, 99)), 1),
    }
    if len(window) == 2:
        during = [
            latency[e] for e, t in sent_at.items() if window[0] <= t <= window[1] and e in latency
        ]
        out["swap_clicks"] = len(during)
        out["swap_p99_ms"] = round(float(np.percentile(during, 99)), 1) if during else None
        out["release"] = outcome
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--clicks", type=int, default=4000)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="release-bench-"))
    repository = scratch / "triton_models"
    shutil.copytree(
        REPO_ROOT / "triton_models",
        repository,
        copy_function=_link_or_copy,
        ignore=shutil.ignore_patterns("__pycache__", ".*"),
    )
    for model in repository.iterdir():  # start from the committed version 1 only
        for version in model.iterdir():
            if version.is_dir() and version.name.isdigit() and version.name != "1":
                shutil.rmtree(version)
    settings = StackSettings().model_copy(
        update={
            "trainer": False,
            "dashboard": False,
            "model_repository": repository,
            "run_dir": scratch / "run",
        }
    )
    kafka = KafkaSettings(bootstrap=settings.bootstrap)
    path = movielens.ensure_ml100k()
    items, clicks = movielens.load_items(path), movielens.load_clicks(path)
    print(f"starting the embedded stack on {repository}", flush=True)
    up_detached(settings)
    control = TritonControl(settings.triton_http_url, settings.admin_key())
    releaser = Releaser(ModelFolder(repository, "scorer"), control, keep=10)
    source = REPO_ROOT / "triton_models" / "scorer" / "1"
    rows: list[dict[str, Any]] = []
    try:
        produce_events(kafka, ITEMS, items)
        urls = [f"http://{settings.host}:{settings.worker_web_port}/healthz"]
        wait_for_catalog(WorkerProbe(urls), len(items), len(items), timeout_s=180)
        run_id = uuid.uuid4().hex[:8]
        cursor = args.warmup
        stream(kafka, relabel(clicks[: args.warmup], f"{run_id}-warm"), 1000.0)
        for r in range(args.runs):
            for kind in ("steady", "release"):
                chunk = relabel(clicks[cursor : cursor + args.clicks], f"{run_id}-{kind}{r}")
                cursor += args.clicks
                before = failed_requests(settings)
                release = (lambda: releaser.deploy(source)) if kind == "release" else None
                row = stream(kafka, chunk, args.rate, release)
                row.update(kind=kind, run=r + 1, triton_failed=failed_requests(settings) - before)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        control.close()
        down(settings)
        shutil.rmtree(scratch, ignore_errors=True)

    print(
        "\n| run | stream | lost | degraded | Triton failed | versions | p50 ms | p99 ms |"
        " swap-window p99 ms | release s |"
    )
    print("|---|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for row in rows:
        rel = row.get("release", {})
        print(
            f"| {row['run']} | {row['kind']} | {row['lost']} | {row['degraded']} | "
            f"{row['triton_failed']} | {row['versions']} | {row['e2e_p50_ms']} | "
            f"{row['e2e_p99_ms']} | {row.get('swap_p99_ms', '–')} | {rel.get('seconds', '–')} |"
        )
    bad = sum(row["lost"] + row["degraded"] + row["triton_failed"] for row in rows)
    bad += sum("error" in row.get("release", {}) for row in rows)
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
