"""RecommenderCore without Kafka: one answer per new click, dedupe, fallback, features."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from models.candidate_features import BASELINE_WEIGHTS
from models.serving import RankRequest
from services.contract.events import ItemEvent
from services.features.store import InMemoryFeatureStore
from services.recommender import feature_rows
from services.recommender.app import in_memory_core
from services.recommender.catalog import CatalogUpdater
from services.recommender.embeddings import EmbeddingIndex
from services.recommender.encoder import HashingEncoder
from services.recommender.pipeline import RankingConfig
from services.recommender.scorer import (
    CircuitBreaker,
    FusedScorer,
    LinearScorer,
    Scored,
    ScorerError,
    ScoringBatch,
)
from tests.support.clicks import click
from tests.support.encoders import FlakyEncoder


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


class FailingScorer:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = True

    async def score(self, batch: ScoringBatch) -> Scored:
        self.calls += 1
        if self.fail:
            raise ScorerError("triton down")
        return Scored(batch.features[..., 0] * 10, "scorer:7")


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
    core = in_memory_core(config=RankingConfig(diversity=0.0))
    core.catalog.upsert(ItemEvent(item_id="a", title="Toy Story"))
    warm(core)
    rec = run(core.process([click("e1", "new-user", "a")])).recommendations[0]
    ids = [i.item_id for i in rec.items]
    assert "a" not in ids
    assert ids[0] in ("b", "c")
    assert rec.items[0].reasons[0] == "because you clicked «Toy Story»"
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


def test_a_users_clicks_in_one_batch_are_answered_in_turn_and_stored_once() -> None:
    core = in_memory_core()
    warm(core)
    puts: list[str] = []
    put = core.users.put
    core.users.put = lambda user_id, state, partition: (
        puts.append(user_id),
        put(user_id, state, partition),
    )  # type: ignore[method-assign]
    batch = [click("e1", "u1", "a"), click("e2", "u1", "b"), click("e1", "u1", "a")]
    res = run(core.process(batch))
    first, second = res.recommendations
    # The first answer is the state after the first click: "b" was not yet seen.
    assert "b" in [i.item_id for i in first.items]
    assert not {"a", "b"} & {i.item_id for i in second.items}
    assert len(res.duplicates) == 1  # the replay inside the batch
    assert puts == ["u1"] and core.users.get("u1").recent == ["b", "a"]
    assert core.users.get("u1").clicks == 2


def test_scorer_failure_degrades_then_recovers_after_cooldown() -> None:
    primary = FailingScorer()
    core = in_memory_core()
    now = [1000.0]  # a fake clock: a loaded machine can take longer than any real cool-down
    core.scorer = CircuitBreaker(primary, LinearScorer(), cooldown_s=5.0, clock=lambda: now[0])
    warm(core)
    degraded = run(core.process([click("e1", "u1", "a")]))
    assert degraded.degraded and degraded.recommendations[0].degraded
    assert degraded.recommendations[0].items, "fallback still ranks"
    # While the breaker is open the primary is not called at all.
    now[0] += 4.9
    run(core.process([click("e2", "u2", "a")]))
    assert primary.calls == 1
    primary.fail = False
    now[0] += 0.2  # the cool-down is over: the next batch tries the primary again
    ok = run(core.process([click("e3", "u3", "a")]))
    assert not ok.degraded and ok.recommendations[0].model_version == "scorer:7"


def _scoring_batch(features: np.ndarray) -> ScoringBatch:
    b, c, _ = features.shape
    request = RankRequest(
        items=np.zeros((c, 384), np.float32),
        history_idx=np.full((b, 1), -1, np.int32),
        candidate_idx=np.tile(np.arange(c, dtype=np.int32), (b, 1)),
        side=features,
    )
    return ScoringBatch(request, features)


def test_fused_scores_add_the_weighted_collaborative_score_to_the_rankers() -> None:
    features = np.random.default_rng(1).random((2, 5, 4)).astype(np.float32)
    batch = _scoring_batch(features)
    primary = FailingScorer()
    primary.fail = False
    fused = run(FusedScorer(primary, 0.5).score(batch))
    expected = features[..., 0] * 10 + 0.5 * (features @ np.asarray(BASELINE_WEIGHTS, np.float32))
    np.testing.assert_allclose(fused.scores, expected, rtol=1e-6)
    assert fused.model_version == "scorer:7" and fused.scores.dtype == np.float32
    alone = run(FusedScorer(primary, 0.0).score(batch))
    np.testing.assert_array_equal(alone.scores, features[..., 0] * 10)
    with pytest.raises(ValueError, match="weight"):
        FusedScorer(primary, -1.0)


def test_a_failing_ranker_under_fusion_still_trips_the_breaker() -> None:
    core = in_memory_core()
    core.scorer = CircuitBreaker(FusedScorer(FailingScorer(), 0.5), LinearScorer())
    warm(core)
    result = run(core.process([click("e1", "u1", "a")]))
    assert result.degraded and result.recommendations[0].items


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


class FlakyStore(InMemoryFeatureStore):
    """The in-memory store, failing its first ``failures`` user writes."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures, self.calls = failures, 0

    def push_user_features(self, rows):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("redis down")
        return super().push_user_features(rows)


def test_feature_write_failure_propagates_after_the_configured_retries() -> None:
    store = FlakyStore(failures=10)
    core = in_memory_core(features=store, config=RankingConfig(feature_write_attempts=3))
    result = run(core.process([click("e1", "u1", "a")]))
    with pytest.raises(ConnectionError):
        run(core.write_features(result))
    assert store.calls == 3
    assert core.store_outage.to_json()["failures"] == 3


def test_a_store_outage_stalls_the_write_until_it_lands(monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker's default: no attempt limit. The batch waits (and is not acknowledged)
    # until the store takes the row; the outage is visible while it lasts, cleared after.
    monkeypatch.setattr(feature_rows, "MAX_WRITE_BACKOFF_S", 0.01)
    store = FlakyStore(failures=6)
    core = in_memory_core(features=store)
    seen: list[dict[str, object]] = []
    real_sleep = asyncio.sleep

    async def watching_sleep(delay: float) -> None:
        if delay > 0:  # a backoff (the pipeline's own zero sleeps only yield to the loop)
            seen.append(core.store_outage.to_json())
        await real_sleep(0)

    monkeypatch.setattr(feature_rows.asyncio, "sleep", watching_sleep)
    result = run(core.process([click("e1", "u1", "a")]))
    run(core.write_features(result))
    assert store.calls == 7
    assert [s["failures"] for s in seen] == [1, 2, 3, 4, 5, 6]
    assert all(s["last_error"] == "ConnectionError: redis down" for s in seen)
    row = store.get_user_features(["u1"])["u1"]
    assert row is not None and row.click_count == 1
    after = core.store_outage.to_json()
    assert after["down_for_s"] is None and after["failures"] == 0 and after["outages"] == 1


def test_deferred_state_is_saved_only_when_the_caller_says_the_answers_are_out() -> None:
    # The worker saves state after delivery: a crash before it leaves the click unknown,
    # so it is answered again when read again (at least once), never lost.
    core = in_memory_core()
    core.defer_state = True
    warm(core)
    core.save_users(run(core.process([click("w-save", "w-save-user", "a")])))
    first = run(core.process([click("e1", "u1", "a")]))
    assert [r.event_id for r in first.recommendations] == ["e1"]
    assert core.users.get("u1").clicks == 0  # not saved yet: "the worker died here"
    again = run(core.process([click("e1", "u1", "a")]))
    assert [r.event_id for r in again.recommendations] == ["e1"] and not again.duplicates
    core.save_users(again)
    assert core.users.get("u1").clicks == 1
    core.save_users(again)  # a second save changes nothing
    assert core.users.get("u1").clicks == 1
    # Once saved, the same click (read again or sent again) is a duplicate.
    third = run(core.process([click("e1", "u1", "a")]))
    assert not third.recommendations and [e.event_id for e in third.duplicates] == ["e1"]


class TextSimilarityScorer:
    """Scores a candidate by the cosine of its embedding with the user's newest item:
    a stand-in for the ranker that is exact about which rows it was sent."""

    def __init__(self) -> None:
        self.batches: list[ScoringBatch] = []

    async def score(self, batch: ScoringBatch) -> Scored:
        self.batches.append(batch)
        req = batch.request
        newest = req.items[np.maximum(req.history_idx[:, 0], 0)]  # [B, D]
        cands = req.items[req.candidate_idx]  # [B, C, D]
        return Scored(np.einsum("bd,bcd->bc", newest, cands), "scorer:text")


def _catalog_core(scorer: TextSimilarityScorer, diversity: float = 0.0):  # type: ignore[no-untyped-def]
    core = in_memory_core(scorer=scorer, config=RankingConfig(diversity=diversity))
    updater = CatalogUpdater(core.shared, HashingEncoder())
    return core, updater


def test_a_new_item_is_recommended_from_its_text_before_anyone_clicks_it() -> None:
    scorer = TextSimilarityScorer()
    core, updater = _catalog_core(scorer)
    films = [
        ItemEvent(item_id="heat", title="Heat", categories=["crime", "thriller", "heist"]),
        ItemEvent(item_id="toy", title="Toy Story", categories=["animation", "family"]),
        ItemEvent(item_id="cars", title="Cars", categories=["animation", "family", "race"]),
    ]
    run(updater.apply(films))
    warm(core)  # a, b, c are popular and co-visited; they have no text
    run(updater.apply([ItemEvent(item_id="ronin", title="Ronin", categories=["crime", "heist"])]))
    rec = run(core.process([click("e1", "fan", "heat")])).recommendations[0]
    top = rec.items[0]
    assert top.item_id == "ronin", [i.item_id for i in rec.items]
    # Nobody clicked it: it is never called popular or trending, only new and similar.
    assert top.reasons == ["similar description to «Heat»", "new in the catalog"]
    assert rec.model_version == "scorer:text" and not rec.degraded


def test_the_ranker_request_indexes_each_distinct_item_once() -> None:
    scorer = TextSimilarityScorer()
    core, updater = _catalog_core(scorer)
    run(updater.apply([ItemEvent(item_id=i, title=f"film {i}") for i in "abcxyz"]))
    warm(core)
    run(
        core.process(
            [click("e1", "u1", "a", 5), click("e2", "u1", "x", 6), click("e3", "u2", "y", 7)]
        )
    )
    req = scorer.batches[-1].request
    assert req.history_idx.shape[0] == 3 and req.candidate_idx.shape[0] == 3
    # u1's second click: history is x then a, most recent first, padded with -1.
    row = req.history_idx[1]
    np.testing.assert_allclose(req.items[row[0]], core.embeddings.vectors(["x"])[0])
    np.testing.assert_allclose(req.items[row[1]], core.embeddings.vectors(["a"])[0])
    assert (row[2:] == -1).all()
    # Each distinct item is sent once.
    assert len({r.tobytes() for r in req.items}) == req.items.shape[0]
    # SIDE's trending slot carries popularity (what the ranker was trained on).
    np.testing.assert_array_equal(req.side[..., 2], req.side[..., 1])


def test_recommendations_carry_the_users_segment_and_user_state_keeps_it() -> None:
    core, updater = _catalog_core(TextSimilarityScorer())
    run(updater.apply([ItemEvent(item_id=i, title=f"film {i}") for i in "abc"]))
    rec = run(core.process([click("e1", "u1", "a")])).recommendations[0]
    assert isinstance(rec.segment, int) and 0 <= rec.segment < 12
    assert core.users.get("u1").segment == rec.segment


def test_diversity_reorders_near_duplicates() -> None:
    scorer = TextSimilarityScorer()
    plain, plain_updater = _catalog_core(scorer, diversity=0.0)
    diverse, diverse_updater = _catalog_core(scorer, diversity=0.7)
    items = [ItemEvent(item_id="seed", title="space war saga")]
    items += [ItemEvent(item_id=f"sw{i}", title=f"space war saga part {i}") for i in range(12)]
    items += [ItemEvent(item_id="other", title="space documentary")]
    for updater in (plain_updater, diverse_updater):
        run(updater.apply(items))
    ids = {}
    for name, core in (("plain", plain), ("diverse", diverse)):
        rec = run(core.process([click("e1", "u1", "seed")])).recommendations[0]
        ids[name] = [i.item_id for i in rec.items]
    assert "other" not in ids["plain"]  # twelve near-duplicates outscore it
    assert "other" in ids["diverse"][:5]


def test_items_wait_for_the_encoder_and_are_embedded_when_it_returns() -> None:
    encoder = FlakyEncoder()
    core = in_memory_core()
    updater = CatalogUpdater(core.shared, encoder)
    run(updater.apply([ItemEvent(item_id="n1", title="New film")]))
    assert "n1" in core.catalog and "n1" not in core.embeddings
    assert list(updater.pending) == ["n1"] and updater.failures == 1
    encoder.up = True
    assert run(updater.flush()) == 1
    assert "n1" in core.embeddings and not updater.pending


def test_embedding_index_grows_and_searches_exactly() -> None:
    index = EmbeddingIndex(dim=4, capacity=2)
    rng = np.random.default_rng(0)
    vecs = {f"i{k}": rng.normal(size=4) for k in range(9)}
    for item, v in vecs.items():
        index.upsert(item, v)
    assert len(index) == 9 and index.matrix.shape == (9, 4)
    query = vecs["i3"] / np.linalg.norm(vecs["i3"])
    best = index.nearest(query[None], k=3)[0]
    assert best[0][0] == "i3" and best[0][1] == pytest.approx(1.0, abs=1e-5)
    without = [i for i, _ in index.nearest(query[None], k=3, exclude=[["i3"]])[0]]
    assert len(without) == 3 and "i3" not in without
    assert index.nearest(np.zeros((1, 4)), k=3) == [[]]
    np.testing.assert_array_equal(index.vectors(["missing"]), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="4 finite floats"):
        index.upsert("bad", np.array([np.nan, 0, 0, 0]))


def test_a_late_click_still_updates_the_users_feature_row() -> None:
    # Clicks of one user arrive out of event-time order. The store keeps only rows strictly
    # newer than the one it holds, so the row after the late click must still be newer.
    store = InMemoryFeatureStore()
    core = in_memory_core(features=store)
    for c in (click("e2", "u1", "b", minute=10), click("e1", "u1", "a", minute=5)):
        run(core.write_features(run(core.process([c]))))
    row = store.get_user_features(["u1"])["u1"]
    assert row is not None and row.click_count == 2
    # Stamped just after the newest click (event time), not at the late one's time.
    assert row.event_ts > click("x", "u1", "b", minute=10).event.ts
    assert (row.event_ts - click("x", "u1", "b", minute=10).event.ts).total_seconds() < 1e-3


class RecordingScorer:
    """The fallback's scores; records each request's size and how many were in flight."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.log: list[str] = []

    async def score(self, batch: ScoringBatch) -> Scored:
        self.sizes.append(batch.shape[0])
        self.log.append("request")
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)  # a Triton round trip: the loop is free meanwhile
            return await LinearScorer().score(batch)
        finally:
            self.in_flight -= 1


def replay_chunked(chunk: int | None) -> tuple[list[object], RecordingScorer]:
    scorer = RecordingScorer()
    core = in_memory_core(scorer=scorer, config=RankingConfig(scoring_chunk=chunk))
    warm(core)
    scorer.sizes.clear()
    scorer.log.clear()
    build = core._candidates

    def logged(accepted):  # type: ignore[no-untyped-def]
        scorer.log.append("candidates")
        return build(accepted)

    core._candidates = logged  # type: ignore[method-assign]
    # 23 clicks of 7 users, several per user in one batch, in an order that interleaves them.
    batch = [click(f"e{i}", f"u{i % 7}", "abcdefgh"[i % 8], minute=i) for i in range(23)]
    result = run(core.process(batch))
    lists = [
        (r.event_id, [(i.item_id, i.score, tuple(i.reasons)) for i in r.items], r.degraded)
        for r in result.recommendations
    ]
    # Each user's state after the batch (shown lists included), as the next batch reads it.
    users = {f"u{u}": core.users.get(f"u{u}").to_json() for u in range(7)}
    return [lists, users], scorer


def test_a_batch_ranked_in_pipelined_chunks_gets_the_answers_of_one_request() -> None:
    whole, one = replay_chunked(None)
    chunked, scorer = replay_chunked(5)
    assert one.sizes == [23]
    assert scorer.sizes == [5, 5, 5, 5, 3]  # at most the chunk per request
    assert scorer.most_in_flight == 2  # the next chunk was requested before this one came back
    # Each chunk's request went out before the next chunk's candidates were built, so the
    # scorer works while they are (a task that only starts at the next await would not).
    assert scorer.log == ["candidates", "request"] * 5
    assert chunked == whole  # same lists, in click order, same reasons, same state after


def test_a_chunk_the_scorer_fails_is_degraded_and_the_others_are_not() -> None:
    scorer = FailingScorer()
    core = in_memory_core(config=RankingConfig(scoring_chunk=4))
    core.scorer = CircuitBreaker(scorer, LinearScorer(), cooldown_s=0.0)
    warm(core)
    calls = scorer.calls
    original = scorer.score

    async def fail_first(batch: ScoringBatch) -> Scored:
        scorer.fail = scorer.calls == calls  # only this batch's first request fails
        return await original(batch)

    scorer.score = fail_first  # type: ignore[method-assign]
    result = run(core.process([click(f"e{i}", f"u{i}", "abc"[i % 3]) for i in range(10)]))
    assert [r.degraded for r in result.recommendations] == [True] * 4 + [False] * 6
    assert [r.model_version for r in result.recommendations][-1] == "scorer:7"
    assert result.degraded  # the batch had a degraded answer
