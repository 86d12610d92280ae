"""Throughput and latency of the whole embedded stack, beside the broker's own floor.

    python -m tests.bench.stack_load [--rates 100,200,500,1000,2000] [--seconds 20]
                                     [--flat-out 20000] [--runs 3] [--out results.json]

Starts the embedded stack (tansu, tritonserver, one worker; ports from ``STREAMREC_``
variables; an empty feature store, see ``fresh_feature_store``) unless one is running,
loads the ml-100k catalog, warms the worker up, then, ``--runs`` times over, in this
order:

1. **echo**: a bare Faust consume→produce echo (``tests.bench.echo_app``, the worker's
   transport and batching, no work) at 200 messages/s through the same broker, then
   ``--flat-out`` messages flat out (the ceiling no worker logic could pass);
2. **streamrec at each offered load** in ``--rates``: ``rate × --seconds`` ml-100k clicks
   at that rate, latency from produce to receipt of the recommendation, the worker's own
   ``latency_ms`` (taking the batch → publishing), the worker's per-stage times (its
   /stages page, reset before the run and read after it: that load's batches alone), and
   the CPU-seconds the workers and tritonserver spent per 1,000 clicks (from /proc). A
   load above what the stack sustains shows as received/s below offered and a growing
   latency: every click is still waited for (it is queued, not dropped);
3. **flat out**: ``--flat-out`` clicks produced as fast as possible; the sustained rate is
   recommendations received per second between the 10th and 90th percentile receipts.

Peak resident memory (VmHWM) of each process (with its children: Triton's Python-backend
stubs) is read at the end.

Every click gets a fresh event_id, so the worker's replay guard never skips one. A
benchmark, not a test: the machine is shared, so it reports medians over the runs and the
spread. Results go to docs/BENCHMARKS.md by hand, with the command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, TopicPartition

from services.contract.events import CLICKS, ITEMS, RECOMMENDATIONS, ClickEvent
from services.data import movielens
from services.eval.cpu import process_tree, process_tree_cpu_s
from services.eval.workers import WorkerProbe, wait_for_catalog
from services.kafka.admin import ensure_topics
from services.kafka.io import EventProducer, consumer, produce_events
from services.kafka.settings import KafkaSettings
from services.stack.control import down, supervisor_pid, up_detached
from services.stack.settings import StackSettings
from tests.bench.echo_app import ECHO_IN, ECHO_OUT
from tests.support.infra import free_port

# Each timed run's producer sends one message here first (EventProducer.warm_up).
WARMUP_TOPIC = "streamrec-bench-warmup"


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

    # Connected before the clock starts: a new idempotent producer holds its first
    # messages ~0.5 s for its producer id, which every paced run's p99 then showed (the
    # "broker floor" of 413 ms in sessions 6-15 was that, not tansu; session 16).
    sender = EventProducer(kafka)
    sender.warm_up(WARMUP_TOPIC)

    def send() -> None:
        def stamped() -> Any:
            for ev in events:
                sent_at[ev.event_id] = time.monotonic()
                yield ev

        produce_events(kafka, in_topic, stamped(), rate=rate, producer=sender)

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


def fresh_feature_store(settings: StackSettings) -> None:
    """Point the stack about to start at an empty Feast store of its own.

    Every invocation replays the same ml-100k clicks, event times included, and the store
    writes a row only if it is newer than the stored one (latest event wins). On a store
    kept from an earlier invocation the workers therefore wrote almost nothing, so every
    invocation but the first on a ``.run`` skipped the feature write's real cost
    (session 21, docs/BENCHMARKS.md). An explicit ``STREAMREC_FEAST_DATA_DIR`` is kept.
    """
    if "STREAMREC_FEAST_DATA_DIR" in os.environ:
        return
    folder = settings.run_dir / "bench-feast"
    shutil.rmtree(folder, ignore_errors=True)
    os.environ["STREAMREC_FEAST_DATA_DIR"] = str(folder)  # the workers inherit it


def start_echo(settings: StackSettings) -> subprocess.Popen[bytes]:
    env = {**os.environ, "STREAMREC_BOOTSTRAP": settings.bootstrap}
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log = open(settings.logs_dir / "bench-echo.log", "wb")  # noqa: SIM115  # the child keeps it
    return subprocess.Popen(
        # Its own web port: Faust's worker command binds one even with the web disabled,
        # and its default (6066) is the first StreamRec worker's.
        [
            sys.executable,
            "-m",
            "tests.bench.echo_app",
            "worker",
            "-l",
            "info",
            "--web-port",
            str(free_port()),
        ],
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


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its descendants (the evaluation's own reading)."""
    return process_tree_cpu_s(pid) or 0.0


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process and its descendants, summed."""
    total = 0
    for p in process_tree(pid):  # the evaluation's reader: the same trees as CPU time
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024.0


def stack_pids(settings: StackSettings) -> dict[str, int]:
    """The workers', tritonserver's and the broker's pids, from the stack's state file."""
    from services.stack.control import read_state

    comps = (read_state(settings) or {}).get("components", {})
    return {
        name: c["pid"]
        for name, c in comps.items()
        if c.get("pid") and (name.startswith("worker") or name in ("tritonserver", "broker"))
    }


def machine_busy_s() -> tuple[float, float]:
    """(busy CPU-seconds of the whole machine, wall seconds) now, from /proc/stat: the
    share of the 2 cores a run left idle says whether waiting or CPU limits it."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(f) for f in fields[:8]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, time.monotonic()


def stage_summary(settings: StackSettings) -> dict[str, Any]:
    """The worker's per-stage times of the batches since the last call, which resets them
    (so each load's stages are its own, not a window across loads)."""
    import httpx

    try:
        url = f"http://{settings.host}:{settings.worker_web_port}/stages?reset=1"
        result: dict[str, Any] = httpx.get(url, timeout=5).json()
        return result
    except (httpx.HTTPError, ValueError):
        return {}


def gc_summary(settings: StackSettings) -> dict[str, Any]:
    """The worker's garbage-collector figures from /healthz (collections per generation,
    longest pause, frozen objects; services/recommender/gcpause.py), or {} if absent."""
    import httpx

    try:
        url = f"http://{settings.host}:{settings.worker_web_port}/healthz"
        result: dict[str, Any] = httpx.get(url, timeout=5).json().get("gc") or {}
        return result
    except (httpx.HTTPError, ValueError):
        return {}


def median_spread(rows: list[dict[str, Any]], key: str, fmt: str = ",.0f") -> str:
    values = [r[key] for r in rows if key in r]
    if not values:
        return "–"
    med, lo, hi = statistics.median(values), min(values), max(values)
    return f"{med:{fmt}} ({lo:{fmt}}–{hi:{fmt}})"


def measured(
    kafka: KafkaSettings,
    events: Sequence[ClickEvent],
    rate: float | None,
    worker_ms: Callable[[dict[str, Any]], float | None],
    pids: dict[str, int],
    settings: StackSettings,
) -> dict[str, Any]:
    """One StreamRec run with CPU-seconds per 1,000 clicks and the per-stage times."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    busy_before, wall_before = machine_busy_s()
    stage_summary(settings)  # starts this run's stages afresh
    gc_before = gc_summary(settings).get("collections")
    # Over capacity the backlog drains at the sustained rate (~300/s on 2 cores): wait
    # for it rather than count queued clicks as lost.
    run = timed_stream(
        kafka, CLICKS, RECOMMENDATIONS, events, rate, worker_ms, timeout_s=120 + len(events) / 150
    )
    row: dict[str, Any] = dict(run.summary())
    if rate:
        row["offered_per_s"] = rate
        span = (max(run.receipts) - run.started) if run.receipts else 0.0
        row["received_per_s"] = run.received / span if span > 0 else 0.0
    spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    busy_after, wall_after = machine_busy_s()
    # Everything on the machine, the benchmark's own client included.
    row["machine_busy_cores"] = round((busy_after - busy_before) / (wall_after - wall_before), 2)
    per_k = 1000.0 / max(run.received, 1)
    row["cpu_s_per_1k"] = {name: round(sec * per_k, 3) for name, sec in spent.items()}
    # Worker and Triton, as before the broker was counted (comparable across sessions).
    row["cpu_s_per_1k_total"] = round(
        sum(sec for name, sec in spent.items() if name != "broker") * per_k, 3
    )
    row["stages"] = stage_summary(settings)
    gc_after = gc_summary(settings)
    if gc_before and gc_after.get("collections"):
        # Collections per generation during the run; a full one (2) pauses every click
        # in flight.
        after = gc_after["collections"]
        row["gc_collections"] = [a - b for a, b in zip(after, gc_before, strict=True)]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates", default="100,200,500,1000,2000", help="offered loads, clicks/s, comma-separated"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each paced run")
    parser.add_argument("--flat-out", type=int, default=20000, help="clicks per flat-out run")
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", help="write every figure as JSON here")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    echo_rate, echo_clicks = 200.0, 3000

    # The trainer would consume every click and retrain mid-run: not part of this figure.
    settings = StackSettings().model_copy(update={"trainer": False, "dashboard": False})
    kafka = KafkaSettings(bootstrap=settings.bootstrap)
    path = movielens.ensure_ml100k()
    items, clicks = movielens.load_items(path), movielens.load_clicks(path)
    started_here = supervisor_pid(settings) is None
    if started_here:
        print("starting the embedded stack", flush=True)
        fresh_feature_store(settings)
        up_detached(settings)
    else:
        print(
            "using the running stack: its feature store may already hold these clicks' event "
            "times, and then writes none of their rows (see fresh_feature_store)",
            flush=True,
        )
    echo = None
    try:
        ensure_topics(kafka, 1, topics=(ECHO_IN, ECHO_OUT, WARMUP_TOPIC))
        produce_events(kafka, ITEMS, items)
        # Every worker's page: with several, each takes only its share of the catalog events.
        urls = [
            f"http://{settings.host}:{settings.worker_web_port + i}/healthz"
            for i in range(settings.workers)
        ]
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

        pids = stack_pids(settings)
        results: dict[str, list[dict[str, Any]]] = {"echo": [], "echo_flat": [], "flat": []}
        for rate in rates:
            results[f"rate{rate:g}"] = []
        for r in range(args.runs):
            e = timed_stream(kafka, ECHO_IN, ECHO_OUT, take(echo_clicks, f"echo{r}"), echo_rate)
            results["echo"].append(e.summary())
            # The broker's and Faust's own ceiling: what no worker logic could exceed.
            ef = timed_stream(kafka, ECHO_IN, ECHO_OUT, take(args.flat_out, f"echoflat{r}"), None)
            results["echo_flat"].append(ef.summary())
            print(f"run {r + 1}: echo {e.summary()}\n  echo flat out {ef.summary()}", flush=True)
            for rate in rates:
                n = int(rate * args.seconds)
                row = measured(kafka, take(n, f"r{rate:g}-{r}"), rate, worker_ms, pids, settings)
                results[f"rate{rate:g}"].append(row)
                print(f"  offered {rate:g}/s: {row}", flush=True)
            f = measured(kafka, take(args.flat_out, f"flat{r}"), None, worker_ms, pids, settings)
            results["flat"].append(f)
            print(f"  flat out {f}", flush=True)
        peaks = {name: round(peak_rss_mib(pid), 1) for name, pid in pids.items()}
        gc_end = gc_summary(settings)
    finally:
        if echo is not None:
            echo.terminate()
            echo.wait(timeout=30)
        if started_here:
            down(settings)

    print(f"\n{args.runs} runs; median (min–max)")
    print(
        "| stream | received/s | e2e p50 ms | e2e p99 ms | worker p50 ms | worker p99 ms "
        "| CPU-s per 1k clicks (worker + Triton) | broker CPU-s per 1k | machine busy cores |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    labelled = [("echo", f"bare echo at {echo_rate:.0f}/s"), ("echo_flat", "bare echo flat out")]
    labelled += [(f"rate{rate:g}", f"StreamRec offered {rate:g}/s") for rate in rates]
    labelled += [("flat", "StreamRec flat out")]
    for name, label in labelled:
        rows = results[name]
        speed = "received_per_s" if name.startswith("rate") else "sustained_per_s"
        broker = [r["cpu_s_per_1k"] for r in rows if "broker" in r.get("cpu_s_per_1k", {})]
        print(
            f"| {label} | {median_spread(rows, speed)} | {median_spread(rows, 'e2e_p50_ms')}"
            f" | {median_spread(rows, 'e2e_p99_ms')} | {median_spread(rows, 'worker_p50_ms')}"
            f" | {median_spread(rows, 'worker_p99_ms')}"
            f" | {median_spread(rows, 'cpu_s_per_1k_total', '.2f')}"
            f" | {median_spread(broker, 'broker', '.2f')}"
            f" | {median_spread(rows, 'machine_busy_cores', '.2f')} |"
        )
    print("\nper-stage time per click, ms (each load's own batches; median of runs)")
    stage_names = sorted(
        {k for rows in results.values() for r in rows for k in r.get("stages", {})} - {"batch_size"}
    )
    print("| load | " + " | ".join(stage_names) + " | batch size p50 |")
    print("|---|" + "---|" * (len(stage_names) + 1))
    for name, label in labelled[2:]:
        rows = results[name]
        cells = []
        for stage in stage_names:
            vals = [
                r["stages"][stage]["per_click_ms"] for r in rows if stage in r.get("stages", {})
            ]
            cells.append(f"{statistics.median(vals):.2f}" if vals else "–")
        sizes = [
            r["stages"]["batch_size"]["p50"] for r in rows if "batch_size" in r.get("stages", {})
        ]
        batch = f"{statistics.median(sizes):.0f}" if sizes else "–"
        print(f"| {label} | " + " | ".join(cells) + f" | {batch} |")
    print(f"\npeak resident memory (VmHWM), MiB: {peaks}")
    print(
        f"worker garbage collector since start (collections per generation 0/1/2, longest "
        f"pause ms per generation, frozen objects): {gc_end}"
    )
    lost = sum(int(r["sent"] - r["received"]) for rows in results.values() for r in rows)
    print(f"lost or unanswered: {lost}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(
                {"args": vars(args), "results": results, "peak_rss_mib": peaks, "gc": gc_end},
                fh,
                indent=2,
            )
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
