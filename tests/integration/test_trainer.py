"""The trainer end to end on real parts: Kafka → its event log → a retraining → Triton.

The clicks are synthetic (small, so a retraining takes seconds); the ranker, the
evaluation, the release and the server are the real ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.data import synthetic
from services.kafka.admin import ensure_topics
from services.kafka.io import produce_events
from services.kafka.settings import KafkaSettings
from services.stack.settings import StackSettings
from services.trainer.event_log import EventLog
from services.trainer.service import Trainer
from services.trainer.settings import TrainerSettings
from services.trainer.triton import TritonControl
from tests.support.scorer_models import scorer_repository
from tests.support.triton import triton_alone

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scorer_repository(tmp_path_factory.mktemp("trainer-repo"))


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[StackSettings]:
    with triton_alone(repository, ("scorer",)) as settings:
        yield settings


@pytest.fixture
def kafka(infra) -> KafkaSettings:  # type: ignore[no-untyped-def]
    return KafkaSettings(bootstrap=infra.kafka_bootstrap)


def test_the_event_log_keeps_each_click_once(
    kafka: KafkaSettings, unique: str, tmp_path: Path
) -> None:
    topics = (f"clicks-{unique}", f"items-{unique}")
    ensure_topics(kafka, 2, topics)
    ds = synthetic.generate(n_users=10, n_items=20, n_clicks=200, seed=3)
    produce_events(kafka, topics[1], ds.items)
    produce_events(kafka, topics[0], ds.clicks)
    produce_events(kafka, topics[0], ds.clicks[:50])  # a replay: the same event ids again
    from services.kafka.io import EventProducer

    bad = EventProducer(kafka)
    bad.send(topics[0], b"{not json")
    bad.flush()

    log = EventLog(tmp_path / "log")
    first = log.catch_up(kafka, idle_s=2.0, topics=topics, group=f"trainer-{unique}")
    assert (first.clicks, first.items, first.skipped) == (250, 20, 1)
    again = log.catch_up(kafka, idle_s=1.0, topics=topics, group=f"trainer-{unique}")
    assert (again.clicks, again.items) == (0, 0)  # offsets were committed
    items, clicks = log.load()
    assert len(items) == 20
    assert sorted(c.event_id for c in clicks) == sorted(c.event_id for c in ds.clicks)
    assert [c.ts for c in clicks] == sorted(c.ts for c in clicks)
    # Counted incrementally: lines appended since the last count, repeats included.
    assert log.click_count() == 250
    log.append(ds.clicks[:3], [])
    assert log.click_count() == 253
    assert EventLog(tmp_path / "log").click_count() == 253


def test_a_retraining_is_judged_released_and_logged(
    server: StackSettings, repository: Path, tmp_path: Path
) -> None:
    ds = synthetic.generate(n_users=60, n_items=120, n_clicks=2500, seed=1)
    settings = TrainerSettings(
        model_repository=repository,
        triton_http_url=server.triton_http_url,
        admin_key=server.admin_key(),
        data_dir=tmp_path / "trainer",
        epochs=1,
        min_clicks=500,
        tolerance=0.99,  # promote whatever it scores: this test is about the flow
    )
    trainer = Trainer(settings, KafkaSettings())
    trainer.event_log.append(ds.clicks, ds.items)

    outcome = trainer.run_once()
    assert outcome is not None and outcome.decision == "promoted", outcome
    assert outcome.challenger["cases"] == outcome.champion["cases"] > 0
    assert outcome.challenger["warm_start"] is None  # version 1 has no checkpoint
    control = TritonControl(server.triton_http_url, server.admin_key())
    try:
        assert control.ready_version("scorer") == 2
    finally:
        control.close()
    manifest = json.loads((repository / "scorer/2/export.json").read_text())
    assert manifest["source"].startswith("trainer ")

    assert outcome.challenger["train_clicks"] == outcome.challenger["clicks_before_holdout"]

    # The next retraining starts from the version that serves now, on the newest clicks
    # only when a window is set.
    trainer.settings = settings.model_copy(update={"max_train_clicks": 1_000})
    second = trainer.run_once()
    assert second is not None and second.challenger["warm_start"] == 2
    assert second.champion_version == 2
    assert second.challenger["train_clicks"] == 1_000
    assert second.challenger["clicks_before_holdout"] > 2_000

    decisions = [
        json.loads(line) for line in (tmp_path / "trainer/decisions.jsonl").read_text().splitlines()
    ]
    assert [d["decision"] for d in decisions] == ["promoted", "promoted"]
    assert decisions[0]["challenger"]["ndcg_at_10"] >= 0


def test_too_few_clicks_skip_the_retraining(
    server: StackSettings, repository: Path, tmp_path: Path
) -> None:
    settings = TrainerSettings(
        model_repository=repository,
        triton_http_url=server.triton_http_url,
        admin_key=server.admin_key(),
        data_dir=tmp_path / "trainer",
        min_clicks=10_000,
    )
    trainer = Trainer(settings, KafkaSettings())
    job = trainer.request("test")
    assert trainer.run_once(trainer.jobs[job - 1]) is None
    assert trainer.jobs[0]["state"] == "skipped"
    assert "training needs 10000" in trainer.jobs[0]["reason"]
