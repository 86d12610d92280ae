"""Throughput and latency of the whole embedded stack, beside the broker's own floor.

    python -m tests.bench.stack_load [--rate 200] [--clicks 3000] [--flat-out 20000]
                                     [--runs 3] [--out results.json]

Starts the embedded stack (tansu, tritonserver, one worker; ports from ``STREAMREC_``
variables) unless one is running, loads the ml-100k catalog, warms the worker up, then,
``--runs`` times over, in this order:

1. **echo**: a bare Faust consume→produce echo (``tests.bench.echo_app``, the worker's
   transport and batching, no work) at ``--rate`` messages/s through the same broker,
   then ``--flat-out`` messages flat out (the ceiling no worker logic could pass);
2. **streamrec**: ``--clicks`` ml-100k clicks at ``--rate`` clicks/s, latency from
   produce to receipt of the recommendation, and the worker's own ``latency_ms``
   (taking the batch → publishing);
3. **flat out**: ``--flat-out`` clicks produced as fast as possible; the sustained rate is
   recommendations received per second between the 10th and 90th percentile receipts.

Every click gets a fresh event_id, so the worker's replay guard never skips one. A
benchmark, not a test: the machine is shared, so it reports medians over the runs and the
spread. Results go to docs/BENCHMARKS.md by hand, with the command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import Consumer, TopicPartition

from services.contract.events import CLICKS, ITEMS, RECOMMENDATIONS, ClickEvent
from services.data import movielens
from services.eval.workers import WorkerProbe, wait_for_catalog
from services.kafka.admin import ensure_topics
from services.kafka.io import EventProducer, consumer, produce_events
from services.kafka.settings import KafkaSettings
from services.stack.control import down, supervisor_pid, up_detached
from services.stack.settings import StackSettings
from tests.bench.echo_app import ECHO_IN, ECHO_OUT


@dataclass
class Run:
    """One timed stream: what was sent, what came back, and when."""

    sent: int = 0
    received: int = 0
    latency_ms: list[float] = field(default_factory=list)
    worker_ms: list[float] = field(default_factory=list)
    receipts: list[float] = field(default_factory=list)  # monotonic receipt times
    started: float = 0.0

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {"sent": self.sent, "received": self.received}
        for name, values in (("e2e", self.latency_ms), ("worker", self.worker_ms)):
            if values:
                out[f"{name}_p50_ms"] = float(np.percentile(values, 50))
                out[f"{name}_p99_ms"] = float(np.percentile(values, 99))
        if len(self.receipts) >= 10:
            r = np.sort(np.asarray(self.receipts))
            lo, hi = r[len(r) // 10], r[(9 * len(r)) // 10]
            out["sustained_per_s"] = float((len(r) * 0.8) / max(hi - lo, 1e-9))
            out["overall_per_s"] = float(len(r) / max(r[-1] - self.started, 1e-9))
        return out


def timed_stream(
    kafka: KafkaSettings,
    in_topic: str,
    out_topic: str,
    events: Sequence[ClickEvent],
    rate: float | None,
    worker_ms: Callable[[dict[str, Any]], float | None] = lambda v: None,
    timeout_s: float = 120.0,
) -> Run:
    """Send ``events`` to ``in_topic`` and time each one's answer on ``out_topic``."""
    reader = listen_from_end(kafka, out_topic)
    run = Run(sent=len(events))
    sent_at: dict[str, float] = {}

    def send() -> None:
        def stamped() -> Any:
            for ev in events:
                sent_at[ev.event_id] = time.monotonic()
                yield ev

        produce_events(kafka, in_topic, stamped(), rate=rate)

    run.started = time.monotonic()
    producer = threading.Thread(target=send, daemon=True)
    producer.start()
    deadline = time.monotonic() + timeout_s + (len(events) / rate if rate else 0)
    seen: set[str] = set()
    try:
        while len(seen) < len(events) and time.monotonic() < deadline:
            msg = reader.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            now = time.monotonic()
            value = json.loads(msg.value() or b"{}")
            eid = value.get("event_id")
            if eid not in sent_at or eid in seen:
                continue
            seen.add(eid)
            run.receipts.append(now)
            run.latency_ms.append((now - sent_at[eid]) * 1000.0)
            if (w := worker_ms(value)) is not None:
                run.worker_ms.append(w)
    finally:
        reader.close()
        producer.join(timeout=5)
    run.received = len(seen)
    return run


def listen_from_end(kafka: KafkaSettings, topic: str) -> Consumer:
    """A consumer positioned at the topic's current end: it sees only what comes next."""
    reader = consumer(kafka)
    parts = reader.list_topics(topic, timeout=10).topics[topic].partitions
    ends = [reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts]
    reader.assign([TopicPartition(topic, p, end) for p, end in zip(parts, ends, strict=True)])
    return reader


def relabel(clicks: Sequence[ClickEvent], prefix: str) -> list[ClickEvent]:
    return [c.model_copy(update={"event_id": f"{prefix}-{i}"}) for i, c in enumerate(clicks)]


def start_echo(settings: StackSettings) -> subprocess.Popen[bytes]:
    env = {**os.environ, "STREAMREC_BOOTSTRAP": settings.bootstrap}
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log = open(settings.logs_dir / "bench-echo.log", "wb")  # noqa: SIM115  # the child keeps it
    return subprocess.Popen(
        [sys.executable, "-m", "tests.bench.echo_app", "worker", "-l", "info"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_for_echo(kafka: KafkaSettings, timeout_s: float = 60.0) -> None:
    """Ping the echo until it answers (its consumer group takes seconds to form)."""
    producer = EventProducer(kafka)
    deadline = time.monotonic() + timeout_s
    reader = listen_from_end(kafka, ECHO_OUT)
    try:
        while time.monotonic() < deadline:
            producer.send(ECHO_IN, b'{"event_id": "ping"}')
            producer.flush()
            msg = reader.poll(1.0)
            if msg is not None and msg.error() is None:
                return
        raise TimeoutError("the echo app did not answer; see bench-echo.log in the logs dir")
    finally:
        reader.close()


def median_spread(rows: list[dict[str, float]], key: str) -> str:
    values = [r[key] for r in rows if key in r]
    if not values:
        return "–"
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="offered clicks/s")
    parser.add_argument("--clicks", type=int, default=3000, help="clicks per paced run")
    parser.add_argument("--flat-out", type=int, default=20000, help="clicks per flat-out run")
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", help="write every figure as JSON here")
    args = parser.parse_args(argv)

    # The trainer would consume every click and retrain mid-run: not part of this figure.
    settings = StackSettings().model_copy(update={"trainer": False})
    kafka = KafkaSettings(bootstrap=settings.bootstrap)
    path = movielens.ensure_ml100k()
    items, clicks = movielens.load_items(path), movielens.load_clicks(path)
    started_here = supervisor_pid(settings) is None
    if started_here:
        print("starting the embedded stack", flush=True)
        up_detached(settings)
    echo = None
    try:
        ensure_topics(kafka, 1, topics=(ECHO_IN, ECHO_OUT))
        produce_events(kafka, ITEMS, items)
        urls = [f"http://{settings.host}:{settings.worker_web_port}/healthz"]
        wait_for_catalog(WorkerProbe(urls), len(items), len(items), timeout_s=120)
        run_id = uuid.uuid4().hex[:8]
        print(f"warm-up: {args.warmup} clicks", flush=True)
        cursor = 0

        def take(n: int, label: str) -> list[ClickEvent]:
            nonlocal cursor
            chunk = clicks[cursor : cursor + n]
            cursor = (cursor + n) % max(1, len(clicks) - n)
            return relabel(chunk, f"{run_id}-{label}")

        timed_stream(kafka, CLICKS, RECOMMENDATIONS, take(args.warmup, "warm"), None)
        echo = start_echo(settings)
        wait_for_echo(kafka)

        def worker_ms(value: dict[str, Any]) -> float | None:
            return value.get("latency_ms")

        results: dict[str, list[dict[str, float]]] = {
            "echo": [],
            "echo_flat": [],
            "streamrec": [],
            "flat": [],
        }
        for r in range(args.runs):
            e = timed_stream(kafka, ECHO_IN, ECHO_OUT, take(args.clicks, f"echo{r}"), args.rate)
            results["echo"].append(e.summary())
            # The broker's and Faust's own ceiling: what no worker logic could exceed.
            ef = timed_stream(kafka, ECHO_IN, ECHO_OUT, take(args.flat_out, f"echoflat{r}"), None)
            results["echo_flat"].append(ef.summary())
            s = timed_stream(
                kafka,
                CLICKS,
                RECOMMENDATIONS,
                take(args.clicks, f"paced{r}"),
                args.rate,
                worker_ms,
            )
            results["streamrec"].append(s.summary())
            f = timed_stream(
                kafka, CLICKS, RECOMMENDATIONS, take(args.flat_out, f"flat{r}"), None, worker_ms
            )
            results["flat"].append(f.summary())
            print(
                f"run {r + 1}: echo {e.summary()}\n  echo flat out {ef.summary()}\n"
                f"  streamrec {s.summary()}\n"
                f"  flat out {f.summary()}",
                flush=True,
            )
    finally:
        if echo is not None:
            echo.terminate()
            echo.wait(timeout=30)
        if started_here:
            down(settings)

    print(f"\n{args.runs} runs; median (min–max)")
    print("| stream | e2e p50 ms | e2e p99 ms | worker p50 ms | worker p99 ms | clicks/s |")
    print("|---|---|---|---|---|---|")
    for name, label in (
        ("echo", f"bare echo at {args.rate:.0f}/s"),
        ("echo_flat", "bare echo flat out"),
        ("streamrec", f"StreamRec at {args.rate:.0f}/s"),
        ("flat", "StreamRec flat out"),
    ):
        rows = results[name]
        print(
            f"| {label} | {median_spread(rows, 'e2e_p50_ms')} | {median_spread(rows, 'e2e_p99_ms')}"
            f" | {median_spread(rows, 'worker_p50_ms')} | {median_spread(rows, 'worker_p99_ms')}"
            f" | {median_spread(rows, 'sustained_per_s')} |"
        )
    lost = sum(int(r["sent"] - r["received"]) for rows in results.values() for r in rows)
    print(f"lost or unanswered: {lost}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"args": vars(args), "results": results}, fh, indent=2)
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
