"""One micro-batch of clicks -> one recommendation per new click.

This is the worker's logic without Faust: state, candidates, scorer calls (one per
chunk of the batch, pipelined), ranking, explanations and the feature write. The Faust agent only
decodes, calls :meth:`RecommenderCore.process` and publishes.

User state is this worker's own (its partitions). Item statistics and segments are shared
by all workers: a click changes them only through the ``ItemActivity`` record it publishes
(``shared.py``), applied at once in-process or, in the worker, when the feed returns it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import numpy as np

from models.candidate_features import model_side
from models.serving import RankRequest
from services.contract.events import (
    ClickEvent,
    ItemActivity,
    Judged,
    Recommendation,
    RecommendedItem,
)
from services.features.store import OnlineFeatureStore, UserFeatures
from services.recommender import candidates as cand
from services.recommender.catalog import Catalog
from services.recommender.embeddings import EmbeddingIndex
from services.recommender.explain import Evidence, reasons
from services.recommender.feature_rows import (
    FeatureRows,
    StoreOutage,
    item_activity_row,
    push_with_retries,
    user_row,
)
from services.recommender.rerank import mmr_indexed
from services.recommender.scorer import CircuitBreaker, Scored, ScoringBatch
from services.recommender.shadow import ShadowLane
from services.recommender.shared import (
    LocalSharedState,
    RecentIds,
    SharedState,
    SharedStateApplier,
)
from services.recommender.state import COVIS_WINDOW, ItemStats, UserState, UserStateStore
from services.recommender.timing import BatchTimer

log = logging.getLogger(__name__)

# Clicks re-ranked together (see _mmr_orders).
MMR_CHUNK = 32
# A user's text vector when ranking ignores text embeddings: empty, as the feature store's
# user row has it when no vector was computed.
NO_VECTOR = np.zeros(0, np.float32)


@dataclass(frozen=True)
class Click:
    event: ClickEvent
    partition: int
    received_at: float  # time.monotonic() when the worker took the message


@dataclass(frozen=True)
class _Accepted:
    """A new click and its user as they were right after it."""

    click: Click
    user: UserState
    vector: np.ndarray  # mean of recent items' text embeddings; empty if ranking ignores them
    segment: int | None
    judged: list[Judged] = field(default_factory=list)  # this click's verdict on the last lists


# Event-loop turns a new scorer task needs before its request is on the wire: a task only
# starts when the loop next runs, and tritonclient's aio ``infer`` hands the request to
# gRPC one turn later. Measured: with 0 or 1 turns a 30 ms stretch of work that followed
# delayed a 30 ms Triton call to 61-62 ms; with 2 or more it overlapped (31 ms).
SEND_TURNS = 3


async def _let_it_send() -> None:
    for _ in range(SEND_TURNS):
        await asyncio.sleep(0)


@dataclass(frozen=True)
class _Chunk:
    """Part of a batch, ready for the scorer (see ``RankingConfig.scoring_chunk``)."""

    accepted: list[_Accepted]
    cands: list[cand.Candidates]
    scoring: ScoringBatch
    shadow_rows: list[int]
    shadow_batch: ScoringBatch | None
    shadow_version: str | None


@dataclass(frozen=True)
class _ChunkScores:
    scored: Scored
    degraded: bool
    shadow_scored: Scored | None


@dataclass
class BatchResult:
    recommendations: list[Recommendation] = field(default_factory=list)
    duplicates: list[ClickEvent] = field(default_factory=list)
    # Each user's new state and partition, saved by :meth:`RecommenderCore.save_users`
    # when the core defers it (the worker: after the batch's answers are delivered).
    users: dict[str, tuple[UserState, int]] = field(default_factory=dict)
    degraded: bool = False  # any of its answers (a chunk) ranked by the fallback
    # Newest feature row per user and a row per item clicked, for
    # :meth:`RecommenderCore.write_features`.
    features: FeatureRows = field(default_factory=FeatureRows)
    # Deliveries of the batch's shared records (item-activity); await them, like the
    # recommendations, before acknowledging the batch.
    published: list[Awaitable[Any]] = field(default_factory=list)
    # Where the batch's time went; the agent adds its own stages (decode, publish, ...).
    timer: BatchTimer = field(default_factory=BatchTimer)


@dataclass(frozen=True)
class RankingConfig:
    top_k: int = 10
    max_candidates: int = 100
    recent_items: int = 50  # also the ranker's history length (RankerConfig.max_history)
    seen_limit: int = 2000
    # MMR weight of diversity against the ranker's score (0: pure score order); see
    # docs/BENCHMARKS.md for the NDCG cost of the default.
    diversity: float = 0.1
    # False ranks on item IDs and collaborative signals only, as if no language model had
    # read the items (the evaluation's ablation): candidates come from co-visitation, the
    # trending and popular lists only (no semantic neighbours, so no cold start by text);
    # no user segments (they cluster users by the text vectors of what they clicked), so
    # the segment-affinity feature is 0 as for a worker without segments; the ranker gets a
    # zero vector for every item (its input for an item whose text it does not know: it
    # then scores on the side features alone, the model's input shape unchanged); MMR has
    # no similarity to trade against, so lists are in score order; no user vector is
    # written to the feature store. The catalog is still embedded as it arrives: only
    # ranking ignores the vectors.
    text_embeddings: bool = True
    # Clicks per scorer request; a larger batch is ranked in chunks of this size,
    # pipelined (:meth:`RecommenderCore.process`). None: one request per batch.
    scoring_chunk: int | None = None
    # Failed feature writes are retried this many times before the batch fails; None (the
    # worker's choice) retries until the store answers, so an outage stalls the stream
    # (lag grows, /healthz says why) instead of crash-looping the worker.
    feature_write_attempts: int | None = None


class Segmenter(Protocol):
    """Online user segments (services/recommender/segments.py)."""

    def reduce(self, user_vector: np.ndarray) -> list[float]: ...

    def segment_of(self, reduced: Sequence[float]) -> int: ...

    def learn(self, reduced: Sequence[float]) -> int: ...

    def to_state(self) -> dict[str, Any]: ...

    def observe(self, segment: int, item_id: str, ts: float) -> None: ...

    def favourites(self, segment: int, n: int) -> list[str]: ...

    def affinity(self, segment: int, item_id: str) -> float: ...

    def affinities(self, segment: int, item_ids: Sequence[str]) -> np.ndarray: ...


class RecommenderCore:
    def __init__(
        self,
        users: UserStateStore,
        stats: ItemStats,
        catalog: Catalog,
        scorer: CircuitBreaker,
        features: OnlineFeatureStore | None,
        config: RankingConfig = RankingConfig(),
        embeddings: EmbeddingIndex | None = None,
        segments: Segmenter | None = None,
        shared: SharedState | None = None,
        shadow: ShadowLane | None = None,
        defer_state: bool = False,
    ) -> None:
        # True: :meth:`process` leaves the batch's user state for the caller to save with
        # :meth:`save_users` once the answers are delivered. State that reached the
        # changelog then means the answer reached the broker, so a click read again after
        # a crash is answered again only if its answer may not have gone out.
        self.defer_state = defer_state
        self.users, self.stats, self.catalog = users, stats, catalog
        self.shadow = shadow
        self.scorer, self.features, self.config = scorer, features, config
        self.embeddings = embeddings if embeddings is not None else EmbeddingIndex()
        self.segments = segments
        # Without a feed, shared state is this process's alone: records apply at once.
        self.shared = shared or LocalSharedState(
            SharedStateApplier(stats, catalog, self.embeddings, segments)
        )
        # Item feature rows are written for this worker's own clicks once their records
        # are applied (counted): event ids published and not yet back, and items due a row.
        # Bounded: a record that never comes back (its worker died first) is forgotten.
        self._awaiting = RecentIds()
        self.store_outage = StoreOutage()
        self._rows_due: dict[str, None] = {}
        self.shared.applier.on_activity = self._applied

    async def process(self, batch: Sequence[Click]) -> BatchResult:
        """Apply a batch to state and rank; the caller publishes, then writes features.

        Features are written after publishing so the feature store's latency is not
        on the click-to-recommendation path; the batch is acknowledged only after
        both, so a failed write is retried from Kafka rather than lost.
        """
        result = BatchResult()
        accepted, latest = await self._accept(batch, result)
        if not accepted:
            return result
        # Ranked in chunks of at most ``scoring_chunk`` clicks, one scorer request each,
        # pipelined: the next chunk's candidates are built while the scorer ranks this
        # one, and this one's lists are made while it ranks the next. Every click of the
        # batch is already in state, the ranker scores each click on its own, and a
        # chunk's lists change nothing another chunk's candidates read: the answers are
        # those of one request for the batch, but for feed records applied in between.
        size = self.config.scoring_chunk or len(accepted)
        in_flight: list[tuple[_Chunk, asyncio.Future[_ChunkScores]]] = []
        try:
            for start in range(0, len(accepted), size):
                chunk = self._chunk(accepted[start : start + size], latest, result.timer)
                in_flight.append((chunk, asyncio.ensure_future(self._score(chunk))))
                if size < len(accepted):  # other work follows: let the request go first
                    await _let_it_send()
                if len(in_flight) > 1:
                    await self._finish(*in_flight.pop(0), result)
            while in_flight:
                await self._finish(*in_flight.pop(0), result)
        finally:
            for _, task in in_flight:  # a failed chunk: no request is left running
                task.cancel()
        result.users = latest
        if not self.defer_state:
            self.save_users(result)
        # Apply what has arrived since the batch started (here, in-process, the batch's own
        # clicks) so the item rows written next count as much as is known.
        self.shared.sync()
        result.features = self._feature_rows(accepted)
        result.timer.lap("feature_rows")
        return result

    def _chunk(
        self,
        accepted: list[_Accepted],
        latest: dict[str, tuple[UserState, int]],
        timer: BatchTimer,
    ) -> _Chunk:
        """Candidates and the scorer's request (and the shadow's) for some of a batch."""
        cands = self._candidates(accepted)
        timer.lap("candidates")
        scoring = self._scoring_batch(accepted, cands)
        shadow_rows, shadow_batch = self._shadow_batch(accepted, scoring, latest)
        # The label as the rows were chosen (a poll may change it while the batch waits).
        shadow_version = self.shadow.version if self.shadow is not None else None
        timer.lap("scorer_request")
        return _Chunk(accepted, cands, scoring, shadow_rows, shadow_batch, shadow_version)

    async def _score(self, chunk: _Chunk) -> _ChunkScores:
        if chunk.shadow_batch is not None and self.shadow is not None:
            # Side by side: the batch waits for the slower call, not for both in turn.
            (scored, degraded), shadow_scored = await asyncio.gather(
                self.scorer.score(chunk.scoring), self.shadow.score(chunk.shadow_batch)
            )
            return _ChunkScores(scored, degraded, shadow_scored)
        scored, degraded = await self.scorer.score(chunk.scoring)
        return _ChunkScores(scored, degraded, None)

    async def _finish(
        self, chunk: _Chunk, scoring: asyncio.Future[_ChunkScores], result: BatchResult
    ) -> None:
        """The chunk's lists, once its scores are in: MMR, reasons, the lists shown."""
        timer = result.timer
        got = await scoring
        timer.lap("scorer_call")
        scored, degraded = got.scored, got.degraded
        result.degraded = result.degraded or degraded
        accepted, cands = chunk.accepted, chunk.cands
        now = datetime.now(UTC)
        all_rows = range(len(accepted))
        for row, order, vectors in self._mmr_orders(chunk.scoring, cands, all_rows, scored.scores):
            acc, c = accepted[row], cands[row]
            rec = self._recommendation(
                acc, c, scored.scores[row], order, vectors, scored.model_version, degraded, now
            )
            result.recommendations.append(rec)
            acc.user.show(
                "serving",
                acc.click.event.event_id,
                rec.model_version,
                acc.segment,
                [item.item_id for item in rec.items],
            )
        timer.lap("rerank_explain")
        self._shadow_lists(
            accepted,
            cands,
            chunk.scoring,
            chunk.shadow_rows,
            got.shadow_scored,
            chunk.shadow_version,
        )
        timer.lap("shadow")

    async def absorb(self, batch: Sequence[Click]) -> BatchResult:
        """Apply a batch to state without ranking it: a warm-up from history.

        State, shared records and feature rows change exactly as :meth:`process` would
        change them; only the answers (and their cost) are left out.
        """
        result = BatchResult()
        accepted, latest = await self._accept(batch, result)
        self._put_users(latest)
        self.shared.sync()
        if accepted:
            result.features = self._feature_rows(accepted)
        return result

    async def _accept(
        self, batch: Sequence[Click], result: BatchResult
    ) -> tuple[list[_Accepted], dict[str, tuple[UserState, int]]]:
        """Record the batch's new clicks in user state and publish their shared records.

        Returns the accepted clicks and each user's newest state with its partition, for
        :meth:`_put_users` once the lists shown are recorded in it.
        """
        timer = result.timer
        # Rank on everything the feed delivered since the last batch.
        self.shared.sync()
        timer.lap("feed_sync")
        accepted: list[_Accepted] = []
        # Each user's newest state in this batch and its partition, written back once per
        # user after the loop: a heavy user's state (seen items, recent event ids) is tens of
        # KB of changelog JSON, and users click in runs.
        latest: dict[str, tuple[UserState, int]] = {}
        for click in batch:
            ev = click.event
            held = latest.get(ev.user_id)
            # A copy, so an earlier click's answer keeps the state as it was after that click.
            user = held[0].copy() if held else self.users.get(ev.user_id)
            if user.has_event(ev.event_id):
                # Already answered: state is saved only after the answer was delivered
                # (see ``defer_state``), so a click in it, read again after a crash or
                # sent again, needs no second answer.
                result.duplicates.append(ev)
                continue
            previous = user.recent[:COVIS_WINDOW]
            judged = user.judge(ev.item_id)
            user.record(
                ev.event_id,
                ev.item_id,
                ev.ts.timestamp(),
                self.config.recent_items,
                self.config.seen_limit,
            )
            vector, segment, reduced = NO_VECTOR, None, []
            if self.config.text_embeddings:
                vector = self.embeddings.user_vector(user.recent)
            if self.segments is not None and self.config.text_embeddings:
                # Read-only: the centroids learn ``reduced`` when the record is applied.
                reduced = self.segments.reduce(vector)
                segment = self.segments.segment_of(reduced)
                user.segment = segment
            latest[ev.user_id] = (user, click.partition)
            activity = ItemActivity(
                event_id=ev.event_id,
                user_id=ev.user_id,
                item_id=ev.item_id,
                previous=previous,
                ts=ev.ts,
                segment_vector=reduced,
                segment=segment,
            )
            self._awaiting.add(ev.event_id)
            result.published.append(await self.shared.publish(activity))
            # Each answer reflects its user's state right after that click (a user with
            # two clicks in one batch gets two answers, each excluding what was seen then).
            accepted.append(_Accepted(click, user, vector, segment, judged))
        timer.lap("state")
        return accepted, latest

    def _put_users(self, latest: dict[str, tuple[UserState, int]]) -> None:
        # Once per user per batch: a heavy user's state is tens of KB of changelog JSON.
        for user_id, (user, partition) in latest.items():
            self.users.put(user_id, user, partition)

    def save_users(self, result: BatchResult) -> None:
        """Save the batch's user state (a no-op the second time)."""
        self._put_users(result.users)
        result.users = {}

    def _shadow_batch(
        self,
        accepted: list[_Accepted],
        scoring: ScoringBatch,
        latest: dict[str, tuple[UserState, int]],
    ) -> tuple[list[int], ScoringBatch | None]:
        """The rows a challenger in shadow ranks, and its request (None if there are none).

        Only each selected user's newest click of the batch: the state keeps one list per
        lane, and an earlier click's list would be overwritten unseen.
        """
        rows = []
        for row, acc in enumerate(accepted):
            acc.user.shown.pop("shadow", None)  # a list from an old shadow is not judged
            user_id = acc.click.event.user_id
            newest = latest[user_id][0] is acc.user
            if newest and self.shadow is not None and self.shadow.selected(user_id):
                rows.append(row)
        if not rows:
            return rows, None
        request = scoring.request
        subset = ScoringBatch(
            RankRequest(
                items=request.items,
                history_idx=request.history_idx[rows],
                candidate_idx=request.candidate_idx[rows],
                side=request.side[rows],
            ),
            scoring.features[rows],
        )
        return rows, subset

    def _shadow_lists(
        self,
        accepted: list[_Accepted],
        cands: list[cand.Candidates],
        scoring: ScoringBatch,
        rows: list[int],
        scored: Scored | None,
        version: str | None,
    ) -> None:
        """Keep the challenger's lists in user state (never sent), ordered as the served
        lists are (MMR over its scores)."""
        if scored is None or version is None:
            return
        for row, order, _ in self._mmr_orders(scoring, cands, rows, scored.scores):
            acc, c = accepted[row], cands[row]
            items = [c.items[j] for j in order]
            acc.user.show("shadow", acc.click.event.event_id, version, acc.segment, items)

    def _mmr_orders(
        self,
        scoring: ScoringBatch,
        cands: list[cand.Candidates],
        rows: Sequence[int],
        scores: np.ndarray,
    ) -> Iterator[tuple[int, list[int], np.ndarray]]:
        """Each of ``rows`` (``scores[i]`` ranks ``rows[i]``'s candidates) with its MMR
        order and the [len(order), D] text embeddings of the candidates it shows.

        A chunk of clicks at a time, each candidate's vector gathered from the request's
        distinct items only if it can still make the list (``mmr_indexed``): a chunk's
        [chunk, C, 384] vectors for all C candidates were a few MB, and gathering them and
        their norms a quarter of the re-ranking's time.
        """
        request = scoring.request
        for start in range(0, len(rows), MMR_CHUNK):
            chunk = np.asarray(rows[start : start + MMR_CHUNK], np.int64)
            part = slice(start, start + len(chunk))
            counts = np.array([len(cands[row].items) for row in chunk.tolist()])
            # Zero rows when ranking ignores text; padding indexes item row 0 (never chosen).
            index = request.candidate_idx[chunk]
            orders = mmr_indexed(
                scores[part], counts, request.items, index, self.config.top_k, self._diversity
            )
            for row, order, candidates in zip(chunk.tolist(), orders, index, strict=True):
                yield row, order, request.items[candidates[order]]

    @property
    def _diversity(self) -> float:
        # Without text vectors every item is similar to nothing: MMR would be score order
        # anyway, and 0 says so exactly and skips its work.
        return self.config.diversity if self.config.text_embeddings else 0.0

    def _vectors(self, items: Sequence[str]) -> np.ndarray:
        """The items' text embeddings, or zero rows when ranking ignores them."""
        if self.config.text_embeddings:
            return self.embeddings.vectors(items)
        return np.zeros((len(items), self.embeddings.dim), np.float32)

    def _candidates(self, accepted: list[_Accepted]) -> list[cand.Candidates]:
        limit = self.config.max_candidates
        semantic: Sequence[Sequence[tuple[str, float]]] = [()] * len(accepted)
        if self.config.text_embeddings:
            semantic = self.embeddings.nearest(
                np.stack([a.vector for a in accepted]),
                round(limit * cand.SEMANTIC_SHARE),
                exclude=[a.user.seen for a in accepted],
            )
        out = []
        for acc, near in zip(accepted, semantic, strict=True):
            view = None
            if self.segments is not None and acc.segment is not None:
                view = cand.SegmentView(
                    acc.segment,
                    self.segments.favourites(acc.segment, limit),
                    partial(self.segments.affinities, acc.segment),
                )
            out.append(cand.generate(acc.user, self.stats, limit, near, view))
        return out

    def _scoring_batch(
        self, accepted: list[_Accepted], cands: list[cand.Candidates]
    ) -> ScoringBatch:
        """The ranker's request: each distinct item of the batch once, and indices into it."""
        rows: dict[str, int] = {}
        for acc, c in zip(accepted, cands, strict=True):
            for item in acc.user.recent:
                rows.setdefault(item, len(rows))
            for item in c.items:
                rows.setdefault(item, len(rows))
        history_len = max(1, max(len(a.user.recent) for a in accepted))
        width = max(1, max(len(c.items) for c in cands))
        history = np.full((len(accepted), history_len), -1, np.int32)
        candidates = np.zeros((len(accepted), width), np.int32)
        for i, (acc, c) in enumerate(zip(accepted, cands, strict=True)):
            history[i, : len(acc.user.recent)] = [rows[item] for item in acc.user.recent]
            candidates[i, : len(c.items)] = [rows[item] for item in c.items]
        features = cand.pad_features(cands, width)
        request = RankRequest(
            items=self._vectors(list(rows)),
            history_idx=history,
            candidate_idx=candidates,
            side=model_side(features),
        )
        return ScoringBatch(request, features)

    def _recommendation(
        self,
        acc: _Accepted,
        c: cand.Candidates,
        scores: np.ndarray,
        order: list[int],
        vectors: np.ndarray,
        model_version: str,
        degraded: bool,
        now: datetime,
    ) -> Recommendation:
        items = [
            RecommendedItem(item_id=c.items[i], score=round(float(scores[i]), 6), reasons=why)
            for i, why in zip(order, self._reasons(acc, c, order, vectors), strict=True)
        ]
        click = acc.click
        return Recommendation(
            user_id=click.event.user_id,
            event_id=click.event.event_id,
            items=items,
            model_version=model_version,
            segment=acc.segment,
            generated_at=now,
            latency_ms=round((time.monotonic() - click.received_at) * 1000.0, 3),
            degraded=degraded,
            judged=acc.judged,
        )

    def _reasons(
        self, acc: _Accepted, c: cand.Candidates, order: list[int], vectors: np.ndarray
    ) -> list[list[str]]:
        """The reasons of each shown candidate (``order`` indexes ``c.items``; ``vectors``
        are the shown candidates' text embeddings, in list order), with one co-visitation
        lookup for the list."""
        recent = acc.user.recent[:10]
        shown = [c.items[i] for i in order]
        # "similar description to": the recent item whose text is nearest each shown one.
        # One matrix-vector product per item, not one product for the list: a matrix
        # product rounds differently, and near-ties would then name another item.
        similar: list[str | None] = [None] * len(order)
        semantic = [k for k, i in enumerate(order) if "semantic" in c.sources[i]]
        if semantic and recent:
            recent_vectors = self._vectors(recent)
            for k in semantic:
                sims = recent_vectors @ vectors[k]
                best = int(np.argmax(sims))
                if sims[best] > 0:  # an item without text (zero row) is similar to nothing
                    similar[k] = self.catalog.title(recent[best])
        # "because you clicked": the recent click that led to it by co-visitation.
        covisited = [k for k, i in enumerate(order) if "covisitation" in c.sources[i]]
        anchors: list[str | None] = [None] * len(order)
        if covisited and c.neighbours is not None:
            found = c.neighbours.strongest_sources([shown[k] for k in covisited])
            for k, source in zip(covisited, found, strict=True):
                anchors[k] = self.catalog.title(source) if source else None
        popularity = self.stats.popularity
        return [
            reasons(
                Evidence(
                    sources=frozenset(c.sources[i]),
                    covis_item=anchors[k],
                    similar_item=similar[k],
                    segment=acc.segment,
                    is_new=popularity.get(item, 0) == 0,
                )
            )
            for k, (i, item) in enumerate(zip(order, shown, strict=True))
        ]

    def _applied(self, record: ItemActivity) -> None:
        """A click record was applied: if it is this worker's, its item is due a row."""
        if self._awaiting.remove(record.event_id):
            self._rows_due[record.item_id] = None

    def _feature_rows(self, accepted: list[_Accepted]) -> FeatureRows:
        """Each user's newest row, and the rows of the items this worker's clicks counted
        in since the last batch (with the feed, a batch's own clicks come back later)."""
        newest: dict[str, _Accepted] = {}  # a user's later click in the batch saw more
        for acc in accepted:
            newest[acc.click.event.user_id] = acc
        items, self._rows_due = self._rows_due, {}
        users: list[UserFeatures] = [
            user_row(user_id, acc.user, acc.vector, acc.segment) for user_id, acc in newest.items()
        ]
        windows = self.shared.applier.item_windows
        rows = (item_activity_row(item, self.stats, windows) for item in items)
        return FeatureRows(users, [row for row in rows if row is not None])

    async def write_features(self, result: BatchResult) -> None:
        """One push of user rows and one of item rows per batch, each retried with backoff
        until it is written (``store_outage`` tells /healthz while it is not): the batch
        is acknowledged only after, so no offset is committed past an unwritten row."""
        if self.features is None:
            return
        retry = partial(
            push_with_retries,
            attempts=self.config.feature_write_attempts,
            outage=self.store_outage,
        )
        await retry(self.features.push_user_features, result.features.users)
        await retry(self.features.push_item_activity, result.features.items)
