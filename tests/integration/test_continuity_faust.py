"""A real Faust consumer skips messages: the worker stops and commits nothing unhandled.

Session 12's test 1 lost 16 clicks this way: the restarted worker's consumer jumped ahead
on one partition, the continuity check stopped the batch, and Faust's ``take_events`` then
acknowledged the whole refused batch on the way out, every partition's clicks in it, and
the consumer counted the skipped offsets as done (services/recommender/continuity.py).
Here a real Faust worker on the real broker seeks one partition forward mid-stream.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from services.kafka.admin import ensure_topics
from services.kafka.lag import consumer_lag
from services.kafka.settings import KafkaSettings
from tests.support.infra import free_port

pytestmark = pytest.mark.integration

PER_PARTITION = 400
JUMP_TO = 300


def handled_prefixes(lines: list[str]) -> dict[int, int]:
    """Per partition, the end of the run of offsets handled from 0 without a hole."""
    seen: dict[int, set[int]] = {0: set(), 1: set()}
    for line in lines:
        partition, offset = map(int, line.split())
        seen[partition].add(offset)
    ends = {}
    for partition, offsets in seen.items():
        end = 0
        while end in offsets:
            end += 1
        ends[partition] = end
    return ends


def _produce(kafka: KafkaSettings, topic: str) -> None:
    ensure_topics(kafka, 2, [topic])
    # One record per record batch: a broker hands a fetch whole batches, and the worker's
    # small fetches must stop short of the offset its seek jumps to.
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap, "linger.ms": 0, "batch.num.messages": 1}
    )
    for i in range(PER_PARTITION):
        for partition in (0, 1):
            producer.produce(topic, f"{partition}-{i}".encode(), b"k", partition=partition)
    assert producer.flush(30) == 0


def _run_worker(
    kafka: KafkaSettings, topic: str, tmp_path: Path, **extra: str
) -> tuple[str, int, list[str]]:
    """Run the skip worker to its exit: (its log, its exit code, its handled lines)."""
    handled = tmp_path / "handled.txt"
    env = dict(
        os.environ,
        SKIP_BOOTSTRAP=kafka.bootstrap,
        SKIP_TOPIC=topic,
        SKIP_HANDLED=str(handled),
        SKIP_JUMP_TO=str(JUMP_TO),
        SKIP_DATADIR=str(tmp_path / "data"),
        SKIP_WEB_PORT=str(free_port()),
        **extra,
    )
    try:
        run = subprocess.run(
            [sys.executable, "-m", "tests.support.skip_worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the worker did not stop on the skip: {str(exc.stderr)[-3000:]}")
    log = run.stdout + run.stderr
    (tmp_path / "worker.log").write_text(log)
    lines = handled.read_text().split("\n")[:-1] if handled.exists() else []
    return log, run.returncode, lines


def test_a_skip_stops_the_worker_and_commits_nothing_it_did_not_handle(
    infra, unique, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    kafka = KafkaSettings(bootstrap=infra.kafka_bootstrap)
    topic = f"skip-{unique}"
    _produce(kafka, topic)
    log, returncode, lines = _run_worker(kafka, topic, tmp_path)

    assert "the consumer skipped messages" in log, log[-3000:]
    assert returncode != 0, "a worker that stops on skipped messages must exit non-zero"
    assert lines, "the worker handled no batch before the jump"
    done = handled_prefixes(lines)
    assert done[0] < JUMP_TO, "the jump must skip offsets never handled"

    committed = {p.partition: p.committed for p in consumer_lag(kafka, f"skip-{topic}", [topic])}
    for partition in (0, 1):
        # Nothing past what was handled from the start: the refused batch and the skipped
        # offsets wait for the restarted worker.
        assert (committed[partition] or 0) <= done[partition], (
            f"partition {partition}: committed {committed[partition]} but handled only "
            f"offsets < {done[partition]} without a hole"
        )
    assert any(committed.values()), "the batches handled before the jump were committed"


def test_a_run_that_starts_past_the_committed_offset_stops_and_commits_nothing(
    infra, unique, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Session 15's CI loss: a restarted worker's first messages on a partition came from
    past the group's committed offset. Faust counts the offsets between as a gap done once
    anything after it is acked; the continuity check's start offset must stop the worker.
    """
    kafka = KafkaSettings(bootstrap=infra.kafka_bootstrap)
    topic = f"skip-{unique}"
    _produce(kafka, topic)
    committed_at = 50
    group = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"skip-{topic}"})
    try:
        group.commit(offsets=[TopicPartition(topic, 0, committed_at)], asynchronous=False)
    finally:
        group.close()

    log, returncode, lines = _run_worker(kafka, topic, tmp_path, SKIP_AT_START="1")

    assert f"got offset {JUMP_TO} while {committed_at} was next" in log, log[-3000:]
    assert "(the broker gave offset 50 from there)" in log, log[-3000:]
    assert returncode != 0, "a worker that stops on skipped messages must exit non-zero"
    assert not any(line.startswith("0 ") for line in lines), "partition 0 handled past the jump"
    committed = {p.partition: p.committed for p in consumer_lag(kafka, f"skip-{topic}", [topic])}
    assert committed[0] == committed_at, (
        f"partition 0 committed {committed[0]}: offsets {committed_at}..{JUMP_TO - 1} were "
        "never handed to the worker"
    )
    done = handled_prefixes(lines)
    assert (committed[1] or 0) <= done[1], "partition 1 committed past what it handled"
