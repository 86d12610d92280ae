"""Two real workers in one consumer group on the embedded stack: the clicks are split
between them, each gets exactly one answer, and both hold the same shared state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.contract.events import CLICKS, ITEMS, RECOMMENDATIONS
from services.data import synthetic
from services.kafka.io import produce_events
from services.kafka.settings import KafkaSettings
from services.stack.components import worker_environment
from tests.support.infra import free_port
from tests.support.streams import collect

pytestmark = pytest.mark.integration


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        resp = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return 0, {}
    return resp.status_code, resp.json()


@pytest.fixture
def second_worker(stack) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A second `python -m services.recommender worker` in the stack's group; its URL."""
    port = free_port()
    env = {**worker_environment(stack, 1), "STREAMREC_WORKER_WEB_PORT": str(port)}
    log_path = stack.logs_dir / "worker-extra.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.recommender", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield f"http://{stack.host}:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_two_workers_answer_each_click_once_and_share_one_state(  # type: ignore[no-untyped-def]
    stack, second_worker, unique
) -> None:
    kafka = KafkaSettings(bootstrap=stack.bootstrap)
    urls = [f"http://{stack.host}:{stack.worker_web_port}", second_worker]

    # Both ready: each holds some `clicks` partitions (disjoint) and has read the feeds.
    deadline = time.monotonic() + 180
    while True:
        health = [get(f"{url}/healthz") for url in urls]
        owned = [
            {p for p in h.get("assigned_partitions", []) if p.startswith(f"{CLICKS}:")}
            for _, h in health
        ]
        if all(code == 200 for code, _ in health) and all(owned) and not owned[0] & owned[1]:
            break
        assert time.monotonic() < deadline, f"workers not both ready: {health}"
        time.sleep(1)
    assert len(owned[0] | owned[1]) == stack.topic_partitions

    ds = synthetic.generate(n_users=50, n_items=40, n_clicks=400, seed=21)
    prefix = f"two-{unique}-"
    items = [i.model_copy(update={"item_id": prefix + i.item_id}) for i in ds.items]
    clicks = [
        c.model_copy(
            update={
                "event_id": prefix + c.event_id,
                "user_id": prefix + c.user_id,
                "item_id": prefix + c.item_id,
            }
        )
        for c in ds.clicks
    ]
    before = [h["clicks"] for _, h in health]
    produce_events(kafka, ITEMS, items)
    produce_events(kafka, CLICKS, clicks)

    recs = collect(kafka, RECOMMENDATIONS, lambda v: v["event_id"].startswith(prefix), 400)
    counts = Counter(r["event_id"] for r in recs)
    assert len(recs) == 400 and set(counts) == {c.event_id for c in clicks}
    assert max(counts.values()) == 1

    # Both took part, and once each has applied the whole feed their shared state is equal.
    deadline = time.monotonic() + 60
    while True:
        shared = [get(f"{url}/shared")[1] for url in urls]
        feeds = [s["feed"] for s in shared]
        settled = all(f["lag"] == 0 for f in feeds) and feeds[0]["applied"] == feeds[1]["applied"]
        if settled and shared[0]["digest"] == shared[1]["digest"]:
            break
        assert time.monotonic() < deadline, f"shared state differs: {shared}"
        time.sleep(0.5)
    health = [get(f"{url}/healthz")[1] for url in urls]
    assert all(h["clicks"] > b for h, b in zip(health, before, strict=True)), health
    for h in health:
        assert h["catalog_items"] >= len(items) and h["embedded_items"] >= len(items)
        assert h["feed"]["caught_up"] and h["feed"]["duplicates"] == 0
