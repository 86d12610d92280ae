"""The trainer's online monitor on a real broker: verdicts read from a recommendations
topic, online HR@10 per version, a segment's drop queuing a retraining."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.contract.events import Judged, Recommendation
from services.kafka.admin import ensure_topics
from services.kafka.io import EventProducer, produce_events
from services.kafka.settings import KafkaSettings
from services.trainer.online_reader import RecommendationReader
from services.trainer.service import Trainer
from services.trainer.settings import TrainerSettings
from tests.support.scorer_models import scorer_repository

pytestmark = pytest.mark.integration


def rec(i: int, segment: int, hit: bool, shadow_hit: bool | None = None) -> Recommendation:
    judged = [Judged(lane="serving", model_version="scorer:1", segment=segment, hit=hit)]
    if shadow_hit is not None:
        judged.append(
            Judged(
                lane="shadow", model_version="scorer:challenger-1", segment=segment, hit=shadow_hit
            )
        )
    return Recommendation(
        user_id=f"u{i % 50}",
        event_id=f"e{i}",
        items=[],
        model_version="scorer:1",
        segment=segment,
        generated_at=datetime.now(UTC),
        latency_ms=1.0,
        judged=judged,
    )


def test_a_drop_read_from_the_topic_queues_a_retraining(infra, unique: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    kafka = KafkaSettings(bootstrap=infra.kafka_bootstrap)
    topic = f"recommendations-{unique}"
    ensure_topics(kafka, 2, (topic,))
    produce_events(kafka, topic, [rec(-1, 0, True)])  # before the reader: not counted
    settings = TrainerSettings(
        model_repository=scorer_repository(tmp_path / "repo"),
        data_dir=tmp_path / "trainer",
        drift_min_judged=300,
    )
    trainer = Trainer(settings, kafka)
    trainer.reader = RecommendationReader(kafka, trainer.monitor, topic=topic)
    assert trainer.reader.start()

    rng = random.Random(0)
    steady = [rec(i, i % 2, rng.random() < 0.3) for i in range(2000)]
    produce_events(kafka, topic, steady)
    bad = EventProducer(kafka)
    bad.send(topic, b"{not a recommendation")
    bad.flush()
    paired = [rec(10_000 + i, 0, rng.random() < 0.3, rng.random() < 0.2) for i in range(200)]
    dropped = [rec(20_000 + i, 1, rng.random() < 0.03) for i in range(1200)]
    produce_events(kafka, topic, paired + dropped)

    total = len(steady) + len(paired) + len(dropped)
    deadline = time.monotonic() + 60
    while trainer.monitor.records < total and time.monotonic() < deadline:
        time.sleep(0.2)
    trainer.reader.stop()
    status = trainer.status()["online"]
    assert status["records"] == total and trainer.reader.unreadable == 1
    assert status["versions"]["scorer:1"]["judged"] == total
    assert status["shadow"]["scorer:challenger-1"]["judged"] == 200
    drifts = status["drifts"]
    assert drifts and {d["segment"] for d in drifts} == {"1"}
    queued = [j for j in trainer.jobs if j["state"] == "queued"]
    assert len(queued) == 1 and queued[0]["reason"].startswith("drift: segment 1's online HR@10")
