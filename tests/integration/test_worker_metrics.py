"""The worker's /metrics on the embedded stack: what it counts is what the worker did.

Real processes (tansu, tritonserver, the worker): clicks go in through Kafka, their
recommendations are read back from Kafka, and the scrape before and after must differ by
exactly what was sent. Triton's own metrics endpoint is checked against the dashboard's
queries of it. No timing is asserted: waits have generous deadlines, assertions are about
counts and series.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.contract.events import CLICKS, ITEMS, RECOMMENDATIONS
from services.data import synthetic
from services.kafka.io import EventProducer, produce_events
from services.kafka.settings import KafkaSettings
from tests.support.streams import collect

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
DEADLINE_S = 120.0

Sample = tuple[str, dict[str, str], float]


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=30)


def worker_url(stack: Any) -> str:
    return f"http://{stack.host}:{stack.worker_web_port}"


def scrape(stack: Any) -> list[Sample]:
    response = get(f"{worker_url(stack)}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    ]


def total(found: list[Sample], name: str, **labels: str) -> float:
    """The sum over the series of ``name`` whose labels include ``labels``."""
    return sum(
        v for n, ls, v in found if n == name and all(ls.get(k) == x for k, x in labels.items())
    )


def series(found: list[Sample], name: str) -> list[dict[str, str]]:
    return [labels for n, labels, _ in found if n == name]


def wait_until(
    check: Callable[[], bool],
    what: str,
    timeout: float = DEADLINE_S,
    state: Callable[[], object] = lambda: None,
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting: {what} (last seen: {state()})"
        time.sleep(0.5)


def health(stack: Any) -> dict[str, Any]:
    body: dict[str, Any] = get(f"{worker_url(stack)}/healthz").json()
    return body


def quiet(stack: Any, still_s: float = 3.0) -> Callable[[], bool]:
    """A check that is true once no consumed partition has a backlog and the click and
    item counters have not moved for ``still_s`` seconds."""
    last: list[tuple[float, float]] = []
    since = [time.monotonic()]

    def check() -> bool:
        found = scrape(stack)
        counts = (total(found, "streamrec_clicks_total"), total(found, "streamrec_items_total"))
        if total(found, "streamrec_consumer_lag_messages") > 0 or last[-1:] != [counts]:
            last[:] = [counts]
            since[0] = time.monotonic()
            return False
        return time.monotonic() - since[0] >= still_s

    return check


def test_metrics_count_exactly_what_the_worker_did(stack, unique) -> None:  # type: ignore[no-untyped-def]
    kafka = KafkaSettings(bootstrap=stack.bootstrap)
    wait_until(lambda: health(stack)["status"] == "ok", "the worker to be ready")
    ds = synthetic.generate(n_users=20, n_items=60, n_clicks=120, seed=11)
    prefix = f"metrics-{unique}-"
    clicks = [c.model_copy(update={"event_id": prefix + c.event_id}) for c in ds.clicks]
    items = [i.model_copy(update={"item_id": prefix + i.item_id}) for i in ds.items]
    clicks = [
        c.model_copy(update={"item_id": prefix + c.item_id, "user_id": prefix + c.user_id})
        for c in clicks
    ]
    # The stack is shared by the session: let what earlier tests sent drain first, so the
    # counts below are this test's alone (no backlog on any consumed partition, and the
    # counters still for a few seconds).
    wait_until(quiet(stack), "the worker to drain earlier tests' messages")
    applied = health(stack)["feed"]["applied"]
    items_before = total(scrape(stack), "streamrec_items_total")
    produce_events(kafka, ITEMS, items)
    # A batch is ranked on the feed as it was when the batch began: catalog first.
    wait_until(
        lambda: health(stack)["feed"]["applied"] >= applied + len(items), "the catalog to apply"
    )
    wait_until(
        lambda: total(scrape(stack), "streamrec_items_total") >= items_before + len(items),
        "the items agent to count the catalog",
    )
    before = scrape(stack)
    assert total(before, "streamrec_items_total") == items_before + len(items)
    # Stage times start afresh on a reset (the benchmark reads each load's own): nothing
    # since, on a quiet worker.
    get(worker_url(stack) + "/stages?reset=1")
    assert get(worker_url(stack) + "/stages").json() == {}

    sending = time.time()
    produce_events(kafka, CLICKS, clicks)
    producer = EventProducer(kafka)
    producer.send(CLICKS, f"not json {unique}".encode(), key=unique.encode())
    producer.send_event(CLICKS, clicks[0])  # a replay, after its original on one partition
    producer.flush()
    recs = collect(kafka, RECOMMENDATIONS, lambda v: v["event_id"].startswith(prefix), len(clicks))
    assert len(recs) == len(clicks) and len({r["event_id"] for r in recs}) == len(clicks)
    stages = get(worker_url(stack) + "/stages").json()
    assert stages["candidates"]["per_click_ms"] > 0 and stages["batch_size"]["mean"] >= 1

    sent = len(clicks) + 2  # the malformed one and the replay are consumed too

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    after: list[Sample] = []

    def counted() -> bool:
        nonlocal after
        after = scrape(stack)
        return delta("streamrec_clicks_total") >= sent

    # The tally moves after a batch's sends are delivered, a moment after the answers
    # are readable; nothing else sends clicks meanwhile.
    wait_until(counted, f"streamrec_clicks_total to rise by {sent}")
    assert delta("streamrec_clicks_total") == sent
    assert delta("streamrec_recommendations_total") == len(clicks)
    assert delta("streamrec_duplicates_total") == 1
    assert delta("streamrec_dead_letters_total", topic=CLICKS) == 1
    assert delta("streamrec_dead_letters_total", topic=ITEMS) == 0
    assert delta("streamrec_degraded_recommendations_total") == 0
    assert delta("streamrec_items_total") == 0  # the catalog was counted before

    # Histograms: one batch-size observation per batch, summing to the messages consumed;
    # every batch times its decode; one latency observation per answer.
    batches = delta("streamrec_batches_total")
    assert batches >= 1
    assert delta("streamrec_batch_clicks_count") == batches
    assert delta("streamrec_batch_clicks_sum") == sent
    assert delta("streamrec_stage_seconds_count", stage="decode") == batches
    assert 1 <= delta("streamrec_stage_seconds_count", stage="scorer_call") <= batches
    assert delta("streamrec_stage_seconds_sum", stage="scorer_call") > 0
    assert delta("streamrec_click_to_recommendation_seconds_count") == len(clicks)
    # Measured from the Kafka timestamp, so no click can have waited longer than this test
    # has run (its event time is in 2024: measured from that, each would be a year or more).
    waited = delta("streamrec_click_to_recommendation_seconds_sum")
    assert 0 < waited <= len(clicks) * (time.time() - sending)
    segments = {"none" if r["segment"] is None else str(r["segment"]) for r in recs}
    answered_by_segment = sum(
        delta("streamrec_segment_recommendations_total", segment=s) for s in segments
    )
    assert answered_by_segment == len(clicks)

    # The model that ranked the latest batch, as the recommendations carry it.
    model, _, version = recs[-1]["model_version"].rpartition(":")
    served = [s for s in series(after, "streamrec_model_info") if s["lane"] == "serving"]
    assert served == [{"lane": "serving", "model": model, "version": version}]

    assert total(after, "streamrec_catalog_items") >= len(items)
    assert total(after, "streamrec_users_in_memory") >= len({c.user_id for c in clicks})

    # Garbage collections are timed; the startup heap and the state read at the first
    # batch are frozen out of them (gcpause.py): a few hundred thousand objects.
    assert total(after, "streamrec_gc_pause_seconds_count", generation="0") > 0
    gc_now = health(stack)["gc"]
    assert gc_now["frozen_objects"] > 100_000, gc_now
    assert gc_now["collections"][0] > 0
    assert gc_now["thresholds"][0] == 50_000  # STREAMREC_GC_YOUNG_THRESHOLD's default
    # One thread per native pool: idle BLAS threads spin on the cores tansu and Triton
    # need (threads.py). numpy's OpenBLAS is always loaded, so it must be listed.
    pools = health(stack)["native_threads"]
    assert any(name.startswith("openblas:") for name in pools), pools
    assert set(pools.values()) == {1}, pools


def test_lag_gauges_cover_the_assigned_partitions_and_drain_to_zero(stack, unique) -> None:  # type: ignore[no-untyped-def]
    kafka = KafkaSettings(bootstrap=stack.bootstrap)
    wait_until(lambda: health(stack)["status"] == "ok", "the worker to be ready")
    # Clicks from many users, so most partitions have an end offset above their start:
    # lag 0 then means "committed up to the end", not "empty partition".
    ds = synthetic.generate(n_users=40, n_items=30, n_clicks=80, seed=5)
    prefix = f"lag-{unique}-"
    clicks = [
        c.model_copy(update={"event_id": prefix + c.event_id, "user_id": prefix + c.user_id})
        for c in ds.clicks
    ]
    produce_events(kafka, CLICKS, clicks)
    recs = collect(kafka, RECOMMENDATIONS, lambda v: v["event_id"].startswith(prefix), len(clicks))
    assert len(recs) == len(clicks)
    assigned = {
        tuple(tp.split(":")) for tp in health(stack)["assigned_partitions"] if tp.startswith(CLICKS)
    }
    assert assigned, "a ready worker holds clicks partitions"
    last: list[Sample] = []
    lag: dict[tuple[str, str], float] = {}

    def drained() -> bool:
        nonlocal last, lag
        last = scrape(stack)
        lag = {
            (s["topic"], s["partition"]): v
            for n, s, v in last
            if n == "streamrec_consumer_lag_messages" and s["topic"] == CLICKS
        }
        # Every clicks partition it holds has a series; once the clicks are answered and
        # their offsets committed (Faust commits every few seconds), each is 0.
        return set(lag) == assigned and not any(lag.values())

    wait_until(
        drained, f"a lag series per assigned partition {sorted(assigned)}, all 0", state=lambda: lag
    )
    assert total(last, "streamrec_consumer_lag_errors_total") == 0

    # /consumer, for a stalled partition's diagnosis, agrees: each clicks partition the
    # worker holds is fetched up to its end and committed there.
    report = get(f"{worker_url(stack)}/consumer").json()
    rows = {
        tuple(name.split(":")): row
        for name, row in report["assigned"].items()
        if name.startswith(CLICKS)
    }
    assert set(rows) == assigned, report
    for tp, row in rows.items():
        assert row["active"] and not row["paused"], (tp, row)
        assert row["position"] == row["highwater"] == row["committed"], (tp, row)
    assert isinstance(report["generation"], int) and report["member_id"], report


def test_triton_serves_the_metrics_the_dashboard_reads(stack) -> None:  # type: ignore[no-untyped-def]
    dashboard = json.loads((DASHBOARD / "streamrec.json").read_text(encoding="utf-8"))
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets") or []
        for name in re.findall(r"\bnv_\w+", target.get("expr", ""))
    }
    assert queried, "the dashboard has Triton panels"
    # Triton keeps a series per loaded model from the moment it loads, requests or not.
    response = get(f"http://{stack.host}:{stack.triton_metrics_port}/metrics")
    assert response.status_code == 200
    # Series names as Prometheus stores them, read from the lines themselves: the client
    # library's parser renames a counter without a _total suffix (all of Triton's).
    found = {
        (match["name"], match["model"])
        for match in re.finditer(
            r'^(?P<name>nv_\w+)\{[^}]*\bmodel="(?P<model>[^"]*)"', response.text, re.MULTILINE
        )
    }
    missing = {name for name in queried if (name, "scorer") not in found}
    assert not missing, f"Triton exposes no scorer series for {sorted(missing)}"
