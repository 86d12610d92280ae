"""``make demo``: the embedded stack answering a MovieLens-100K replay, live."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import click

from services.contract.events import CLICKS, CLICKS_DLQ, ITEMS, RECOMMENDATIONS
from services.kafka.settings import KafkaSettings
from services.stack.settings import StackSettings


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def run_demo(settings: StackSettings, n_clicks: int, rate: float, keep: bool) -> int:
    from services.cli import format_recommendation
    from services.data import movielens
    from services.eval.workers import WorkerProbe, wait_for_catalog
    from services.kafka.io import EventProducer, produce_events, read_topic
    from services.stack.control import down, supervisor_pid, up_detached

    click.echo("1/4 loading MovieLens-100K (GroupLens data, fetched once into .cache/)")
    path = movielens.ensure_ml100k()
    items, clicks = movielens.load_items(path), movielens.load_clicks(path)[:n_clicks]
    titles = {i.item_id: i.title for i in items}

    started_here = supervisor_pid(settings) is None
    if started_here:
        click.echo("2/4 starting the embedded stack (tansu, tritonserver, Feast, worker)")
        up_detached(settings)
    else:
        click.echo("2/4 using the stack that is already running")
    kafka = KafkaSettings(bootstrap=settings.bootstrap)
    try:
        click.echo(
            f"3/4 sending {len(items)} catalog items and {len(clicks)} clicks at {rate:.0f}/s"
        )
        # One producer for both: its catalog delivery gets it the producer id an idempotent
        # producer waits ~0.5 s for on tansu, so the clicks are not held behind that.
        sender = EventProducer(kafka)
        produce_events(kafka, ITEMS, items, producer=sender)
        # Clicks wait until the worker has embedded the catalog: encoding 1,682 texts takes
        # the CPU for a few seconds, and clicks sent meanwhile would only queue behind it.
        urls = [
            f"http://{settings.host}:{settings.worker_web_port + i}/healthz"
            for i in range(settings.workers)
        ]
        wait_for_catalog(
            WorkerProbe(urls), len(items), len({i.item_id for i in items}), timeout_s=180
        )
        sent_at: dict[str, float] = {}

        def send() -> None:
            def stamped() -> Any:
                for c in clicks:
                    sent_at[c.event_id] = time.monotonic()
                    yield c

            produce_events(kafka, CLICKS, stamped(), rate=rate, producer=sender)

        producer = threading.Thread(target=send, daemon=True)
        producer.start()
        if settings.dashboard:
            click.echo(
                f"   live dashboard: http://{settings.host}:{settings.dashboard_port}/ "
                "(`streamrec demo --keep` leaves it up afterwards)"
            )
        click.echo("4/4 live recommendations (every 250th shown):")
        got: dict[str, float] = {}
        latency: dict[str, float] = {}
        deadline = time.monotonic() + len(clicks) / rate + 60
        for rec in read_topic(kafka, RECOMMENDATIONS, idle_timeout=15):
            value = json.loads(rec.value or b"{}")
            eid = value.get("event_id")
            if eid in sent_at and eid not in got:
                got[eid] = time.monotonic()
                latency[eid] = (got[eid] - sent_at[eid]) * 1000
                if len(got) % 250 == 1:
                    clicked = titles.get(
                        next((c.item_id for c in clicks if c.event_id == eid), ""), "?"
                    )
                    click.echo(f"\nafter a click on «{clicked}»:")
                    click.echo(format_recommendation(value, titles))
            if len(got) >= len(clicks) or time.monotonic() > deadline:
                break
        producer.join(timeout=5)
        dlq = sum(1 for _ in read_topic(kafka, CLICKS_DLQ, idle_timeout=1))
        # The first tenth of the clicks can land while the worker is still joining its
        # consumer group; report the steady state beside the whole run.
        steady = [latency[c.event_id] for c in clicks[len(clicks) // 10 :] if c.event_id in latency]
        click.echo(
            f"\nsummary: {len(clicks)} clicks sent, {len(got)} answered, {dlq} dead-lettered; "
            f"click→recommendation p50 {_pct(list(latency.values()), 50):.0f} ms, "
            f"p99 {_pct(list(latency.values()), 99):.0f} ms; after the first 10%: "
            f"p50 {_pct(steady, 50):.0f} ms, p99 {_pct(steady, 99):.0f} ms "
            "(through the embedded tansu broker; see docs for its latency floor)"
        )
        return 0 if len(got) == len(clicks) else 1
    finally:
        if started_here and not keep:
            click.echo("stopping the stack")
            down(settings)
