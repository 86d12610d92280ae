"""The operator commands against the real embedded stack: dlq list/replay, status with lag
and dead-letter counts, and replay/produce from CSV."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from services.contract import codec
from services.contract.events import CLICKS, CLICKS_DLQ, ITEMS, RECOMMENDATIONS
from services.kafka.io import EventProducer
from services.kafka.settings import KafkaSettings
from tests.integration.test_stack_e2e import stack_env
from tests.support.streams import collect

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kafka(stack) -> KafkaSettings:  # type: ignore[no-untyped-def]
    return KafkaSettings(bootstrap=stack.bootstrap)


def cli(stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=stack_env(stack),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_dlq_list_shows_reasons_and_replay_sends_fixed_records_back_once(
    stack, kafka, unique
) -> None:  # type: ignore[no-untyped-def]
    producer = EventProducer(kafka)
    # A click a worker rejected (as if by a bug since fixed): its payload is a valid click.
    fixed_id = f"fixed-{unique}"
    valid = {
        "event_id": fixed_id,
        "user_id": f"u-{unique}",
        "item_id": "i1",
        "ts": 1_750_000_000_000,
    }
    rejected = codec.dead_letter(
        source_topic=CLICKS,
        partition=0,
        offset=0,
        error=f"unknown item i1 ({unique})",
        payload=json.dumps(valid).encode(),
        key=f"u-{unique}".encode(),
    )
    producer.send(CLICKS_DLQ, codec.encode(rejected), f"u-{unique}".encode())
    # A record too big to have been kept whole: it must be reported, never replayed.
    cut = codec.dead_letter(
        source_topic=CLICKS, partition=0, offset=1, error=f"oversized {unique}", payload=b"x" * 10
    ).model_copy(update={"payload_truncated": True, "payload_size": 2_000_000})
    producer.send(CLICKS_DLQ, codec.encode(cut))
    # And a truly malformed click, which the worker itself dead-letters.
    producer.send(CLICKS, f"not json {unique}".encode(), f"u-{unique}".encode())
    producer.flush()
    collect(kafka, CLICKS_DLQ, lambda v: f"not json {unique}" in v.get("payload", ""), 1)

    listed = cli(stack, "dlq", "list", "--match", unique, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(rows) == 3
    errors = sorted(r["error"] for r in rows)
    assert any("not valid JSON" in e for e in errors) and any("oversized" in e for e in errors)
    assert all(r["dlq"].startswith("clicks.dlq:") for r in rows)
    human = cli(stack, "dlq", "list", "--match", unique)
    assert "3 shown of 3 dead letters matching" in human.stdout
    assert "error: value is not valid JSON" in human.stdout

    dry = cli(stack, "dlq", "replay", "--match", unique, "--from-beginning", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would send 2 to clicks" in dry.stdout

    first = cli(stack, "dlq", "replay", "--match", unique, "--from-beginning")
    assert first.returncode == 0, first.stderr
    assert "sent 2 to clicks" in first.stdout
    assert "cannot be rebuilt" in first.stderr  # the truncated one, with why
    # The fixed click is answered; the malformed one fails again and is dead-lettered anew.
    recs = collect(kafka, RECOMMENDATIONS, lambda v: v["event_id"] == fixed_id, 1)
    assert len(recs) == 1
    again = collect(kafka, CLICKS_DLQ, lambda v: f"not json {unique}" in v.get("payload", ""), 2)
    assert len(again) == 2

    # The replay group remembers where it got: only the new dead letter goes this time.
    second = cli(stack, "dlq", "replay", "--match", unique)
    assert second.returncode == 0, second.stderr
    assert "sent 1 to clicks" in second.stdout
    # Replaying the fixed click once more gives no second recommendation (idempotent).
    cli(stack, "dlq", "replay", "--match", f"unknown item i1 ({unique})", "--from-beginning")
    time.sleep(3)
    assert len(collect(kafka, RECOMMENDATIONS, lambda v: v["event_id"] == fixed_id, 2, 20)) == 1


def test_status_reports_lag_per_partition_dead_letters_and_worker_figures(
    stack, kafka, unique
) -> None:  # type: ignore[no-untyped-def]
    producer = EventProducer(kafka)
    producer.send(CLICKS, f"broken {unique}".encode())
    good = {
        "event_id": f"ok-{unique}",
        "user_id": f"s-{unique}",
        "item_id": "i1",
        "ts": 1_750_000_000_000,
    }
    producer.send(CLICKS, json.dumps(good).encode(), f"s-{unique}".encode())
    producer.flush()
    collect(kafka, CLICKS_DLQ, lambda v: f"broken {unique}" in v.get("payload", ""), 1)
    collect(kafka, RECOMMENDATIONS, lambda v: v["event_id"] == f"ok-{unique}", 1)
    deadline = time.monotonic() + 90
    while True:
        out = cli(stack, "status", "--json")
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        lag = report["lag"]
        # Faust commits on an interval: the lag of an idle stack falls to 0 once it has.
        if lag["total"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert [p["partition"] for p in lag["partitions"]] == list(range(stack.topic_partitions))
    assert lag["total"] == 0, lag
    assert all(p["committed"] is None or p["committed"] == p["end"] for p in lag["partitions"])
    assert report["dead_letters"][CLICKS_DLQ] >= 1
    (worker,) = report["workers"].values()
    assert worker["status"] == "ok" and worker["dead_letters"] >= 1 and worker["clicks"] >= 1
    # Users per segment, from the dashboard's view of the answers (each has a segment).
    segments = report["segments"]
    assert segments["users"] >= 1 and sum(segments["sizes"].values()) == segments["users"]
    human = cli(stack, "status")
    assert "consumer lag (streamrec on clicks): 0" in human.stdout
    assert "dead letters: clicks.dlq" in human.stdout
    assert "users per segment (" in human.stdout


def test_replay_of_a_csv_file_is_answered_in_event_time_order(
    stack, kafka, unique, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    items = tmp_path / "items.csv"
    items.write_text(f"item_id,title,categories\ncsv-{unique},Film {unique},Drama|Crime\n")
    sent = cli(stack, "produce", str(items), "--topic", ITEMS)
    assert sent.returncode == 0 and "sent 1 records to items" in sent.stdout, sent.stderr
    clicks = tmp_path / "clicks.csv"
    # Written out of order: replay sorts by ts, so c2 (earliest) goes first.
    clicks.write_text(
        "event_id,user_id,item_id,ts\n"
        f"c1-{unique},u-{unique},csv-{unique},2025-01-01T00:00:02Z\n"
        f"c2-{unique},u-{unique},i1,2025-01-01T00:00:01Z\n"
    )
    out = cli(stack, "replay", str(clicks), "--speedup", "10")
    assert out.returncode == 0, out.stderr
    assert "replayed 2 clicks" in out.stdout
    recs = collect(kafka, RECOMMENDATIONS, lambda v: v["user_id"] == f"u-{unique}", 2)
    assert [r["event_id"] for r in recs] == [f"c2-{unique}", f"c1-{unique}"]


def test_eval_command_judges_a_replay_against_the_running_stack(stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out_dir = tmp_path / "report"
    run = cli(
        stack,
        "eval",
        "--dataset",
        "synthetic",
        "--limit",
        "400",
        "--withhold",
        "0",
        "--out",
        str(out_dir),
        "--no-progress",
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"answered 400/400 accepted clicks, 0 missing, 0 duplicate", run.stdout)
    report = json.loads((out_dir / "report.json").read_text())
    assert set(report["quality"]["models"]) >= {"system", "popularity"}
    assert (out_dir / "report.md").read_text().startswith("# Streaming replay")


def test_up_status_down_through_the_command(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.support.infra import free_ports

    ports = free_ports(7)
    env = {
        **os.environ,
        "STREAMREC_RUN_DIR": str(tmp_path / "run"),
        "STREAMREC_BROKER_PORT": str(ports[0]),
        "STREAMREC_TRITON_HTTP_PORT": str(ports[1]),
        "STREAMREC_TRITON_GRPC_PORT": str(ports[2]),
        "STREAMREC_TRITON_METRICS_PORT": str(ports[3]),
        "STREAMREC_WORKER_WEB_PORT": str(ports[4]),
        "STREAMREC_TRAINER_PORT": str(ports[5]),
        "STREAMREC_DASHBOARD_PORT": str(ports[6]),
        # The smallest stack that is still one: broker, Triton, a worker.
        "STREAMREC_TRAINER": "false",
        "STREAMREC_DASHBOARD": "false",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )

    try:
        up = run("up", "--detach")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "StreamRec stack is up" in up.stdout and "worker-0" in up.stdout
        status = run("status", "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert {n: c["status"] for n, c in report["components"].items()} == {
            "broker": "healthy",
            "tritonserver": "healthy",
            "worker-0": "healthy",
        }
    finally:
        down = run("down")
    assert down.returncode == 0 and "stack stopped" in down.stdout
    after = run("status")
    assert after.returncode == 3 and "no stack running" in after.stdout
