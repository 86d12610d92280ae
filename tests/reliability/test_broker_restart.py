"""The broker restarted under the workers (issue 7, test 12).

The embedded broker is tansu on memory storage: a restart comes back empty (topics
re-created by the stack, no records, no committed offsets, no consumer groups). That is
the broker's durability, not StreamRec's: Apache Kafka keeps its log across a restart.
What StreamRec must do is reconnect by itself and carry on: each worker's consumer finds
its old position past the new log's end and starts the new log from its beginning, its
producers reconnect, and clicks and catalog events sent after the restart are answered,
with no operator action and no worker restart.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.contract.events import CLICKS, ITEMS, ClickEvent, ItemEvent
from services.data import synthetic
from services.kafka.io import produce_events
from services.stack.health import broker_ready
from tests.support.faults import (
    Replay,
    kafka_of,
    read_answers,
    relabel,
    seed_catalog,
    wait_for,
)
from tests.support.private_stack import kill9, pid_of, private_stack, wait_restarted, worker_health
from tests.support.reliability import record, scale

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def test_workers_reconnect_after_a_broker_restart_and_answer_new_events(tmp_path: Path) -> None:
    # Two workers at every scale: each holds the other's users as standby changelog
    # partitions, and it was those that stopped both workers after a restart (recovery.py).
    workers = 2
    n_before, n_after, rate = scale((400, 600, 50.0), (3_000, 6_000, 200.0))
    ds = synthetic.generate(n_users=150, n_items=200, n_clicks=n_before + n_after, seed=31)
    clicks = relabel(ds.clicks, "restart-")
    first, then = clicks[:n_before], clicks[n_before:]

    with private_stack(tmp_path / "stack", workers=workers) as stack:
        kafka = kafka_of(stack)
        seed_catalog(stack, ds.items)
        Replay(kafka, first, rate).start().join()
        answered_first = read_answers(kafka, [c.event_id for c in first])
        worker_pids = [pid_of(stack, f"worker-{i}") for i in range(workers)]
        held = [worker_health(stack, i)["recommendations"] for i in range(workers)]

        killed_at = time.monotonic()
        old = kill9(stack, "broker")
        new = wait_restarted(stack, "broker", old)
        wait_for("the restarted broker", lambda: broker_ready(kafka), timeout=60)
        back_s = time.monotonic() - killed_at

        # A new catalog item and fresh clicks: all of them sent after the restart.
        item = ItemEvent(
            item_id="restart-new-item",
            title="Broker Restart (2026)",
            description="An item first seen after the broker came back.",
            categories=["Documentary"],
            ts=datetime.now(UTC),
        )
        produce_events(kafka, ITEMS, [item])
        sent_at = time.monotonic()
        Replay(kafka, then, rate).start().join()
        # The new log holds only what came after the restart: read it from its start.
        answered_then = read_answers(kafka, [c.event_id for c in then], timeout=scale(240, 480))
        first_answer_s = time.monotonic() - sent_at
        catalog_after = wait_for(
            "the item sent after the restart in every worker's catalog",
            lambda: all(
                worker_health(stack, i)["catalog_items"] > len(ds.items) for i in range(workers)
            ),
            timeout=120,
        )
        # And one click on it, answered like any other.
        on_new = ClickEvent(
            event_id="restart-click-new-item",
            user_id=then[0].user_id,
            item_id=item.item_id,
            ts=datetime.now(UTC),
        )
        produce_events(kafka, CLICKS, [on_new])
        answered_new = read_answers(kafka, [on_new.event_id], timeout=120)
        after = [worker_health(stack, i) for i in range(workers)]
        pids_after = [pid_of(stack, f"worker-{i}") for i in range(workers)]

    lost_then = answered_then.lost(c.event_id for c in then)
    record(
        "broker_restart",
        workers=workers,
        clicks_before=n_before,
        clicks_after=n_after,
        rate_per_s=rate,
        broker_old_pid=old,
        broker_new_pid=new,
        broker_back_s=round(back_s, 1),
        lost_before=len(answered_first.lost(c.event_id for c in first)),
        lost_after=len(lost_then),
        duplicates_after=answered_then.duplicates,
        answered_after_s=round(first_answer_s, 1),
        new_item_in_catalogs=bool(catalog_after),
        new_item_click_answered=not answered_new.lost([on_new.event_id]),
        worker_restarts=sum(a != b for a, b in zip(worker_pids, pids_after, strict=True)),
        answers_by_worker_after=[
            a["recommendations"] - b for a, b in zip(after, held, strict=True)
        ],
    )
    assert not answered_first.lost(c.event_id for c in first)
    assert not lost_then, (
        f"{len(lost_then)} of {n_after} clicks sent after the broker restart were never "
        f"answered, e.g. {lost_then[:5]}"
    )
    assert answered_then.duplicates == 0
    assert not answered_new.lost([on_new.event_id]), "the click on the new item went unanswered"
    assert pids_after == worker_pids, "a worker had to be restarted to carry on"
