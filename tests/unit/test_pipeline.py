"""RecommenderCore without Kafka: one answer per new click, dedupe, fallback, features."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from services.contract.events import ClickEvent, ItemEvent
from services.features.store import InMemoryFeatureStore
from services.recommender.app import in_memory_core
from services.recommender.pipeline import Click
from services.recommender.scorer import CircuitBreaker, LinearScorer, Scored, ScorerError

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def click(eid: str, user: str, item: str, minute: int = 0) -> Click:
    ev = ClickEvent(event_id=eid, user_id=user, item_id=item, ts=T0 + timedelta(minutes=minute))
    return Click(ev, partition=0, received_at=time.monotonic())


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


class FailingScorer:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = True

    async def score(self, features: np.ndarray) -> Scored:
        self.calls += 1
        if self.fail:
            raise ScorerError("triton down")
        return Scored(features[..., 0] * 10, "scorer:7")


def warm(core, n_users: int = 20) -> None:  # type: ignore[no-untyped-def]
    # Users who click a then b then c make (a, b, c) co-visited.
    batch = []
    for u in range(n_users):
        for j, item in enumerate(("a", "b", "c")):
            batch.append(click(f"w{u}-{j}", f"w{u}", item, minute=j))
    run(core.process(batch))


def test_one_recommendation_per_click_with_its_event_id() -> None:
    core = in_memory_core()
    warm(core)
    res = run(core.process([click("e1", "u1", "a"), click("e2", "u2", "b")]))
    assert [r.event_id for r in res.recommendations] == ["e1", "e2"]
    assert all(r.model_version == LinearScorer.version for r in res.recommendations)


def test_recommendations_exclude_seen_items_and_explain_covisitation() -> None:
    core = in_memory_core()
    core.catalog.upsert(ItemEvent(item_id="a", title="Toy Story"))
    warm(core)
    rec = run(core.process([click("e1", "new-user", "a")])).recommendations[0]
    ids = [i.item_id for i in rec.items]
    assert "a" not in ids
    assert ids[0] in ("b", "c")
    assert rec.items[0].reasons == ["because you clicked «Toy Story»"]
    scores = [i.score for i in rec.items]
    assert scores == sorted(scores, reverse=True)


def test_top_k_bounds_the_list() -> None:
    core = in_memory_core()
    batch = [click(f"e{i}", f"u{i}", f"item{i}") for i in range(40)]
    run(core.process(batch))
    rec = run(core.process([click("x", "fresh", "item0")])).recommendations[0]
    assert len(rec.items) == core.config.top_k
    assert len({i.item_id for i in rec.items}) == len(rec.items)


def test_replayed_event_id_gets_no_second_answer_and_no_double_count() -> None:
    core = in_memory_core()
    first = run(core.process([click("e1", "u1", "a")]))
    again = run(core.process([click("e1", "u1", "a"), click("e1", "u1", "a")]))
    assert len(first.recommendations) == 1
    assert again.recommendations == [] and len(again.duplicates) == 2
    assert core.users.get("u1").clicks == 1
    assert core.stats.popularity["a"] == 1


def test_scorer_failure_degrades_then_recovers_after_cooldown() -> None:
    primary = FailingScorer()
    core = in_memory_core()
    core.scorer = CircuitBreaker(primary, LinearScorer(), cooldown_s=0.2)
    warm(core)
    degraded = run(core.process([click("e1", "u1", "a")]))
    assert degraded.degraded and degraded.recommendations[0].degraded
    assert degraded.recommendations[0].items, "fallback still ranks"
    # While the breaker is open the primary is not called at all.
    run(core.process([click("e2", "u2", "a")]))
    assert primary.calls == 1
    primary.fail = False
    time.sleep(0.25)
    ok = run(core.process([click("e3", "u3", "a")]))
    assert not ok.degraded and ok.recommendations[0].model_version == "scorer:7"


def test_features_are_written_once_per_batch_with_the_latest_row_per_user() -> None:
    store = InMemoryFeatureStore()
    core = in_memory_core(features=store)
    result = run(
        core.process(
            [click("e1", "u1", "a", 0), click("e2", "u1", "b", 1), click("e3", "u2", "c", 2)]
        )
    )
    assert store.get_user_features(["u1"])["u1"] is None  # written only when asked
    run(core.write_features(result))
    rows = store.get_user_features(["u1", "u2", "nobody"])
    assert rows["u1"] is not None and rows["u1"].click_count == 2
    assert rows["u1"].recent_items[:2] == ("b", "a") and rows["u1"].last_item_id == "b"
    assert rows["u2"] is not None and rows["nobody"] is None


def test_feature_write_failure_propagates_after_retries() -> None:
    class Broken:
        calls = 0

        def push_user_features(self, rows):  # type: ignore[no-untyped-def]
            Broken.calls += 1
            raise ConnectionError("redis down")

        def get_user_features(self, user_ids):  # type: ignore[no-untyped-def]
            return {}

    core = in_memory_core(features=Broken())
    result = run(core.process([click("e1", "u1", "a")]))
    with pytest.raises(ConnectionError):
        run(core.write_features(result))
    assert Broken.calls == 3
