"""One micro-batch of clicks -> one recommendation per new click.

This is the worker's logic without Faust: state, candidates, one scorer call
per batch, ranking, explanations and the feature write. The Faust agent only
decodes, calls :meth:`RecommenderCore.process` and publishes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from services.contract.events import ClickEvent, Recommendation, RecommendedItem
from services.features.store import OnlineFeatureStore, UserFeatures
from services.recommender import candidates as cand
from services.recommender.catalog import Catalog
from services.recommender.scorer import CircuitBreaker
from services.recommender.state import ItemStats, UserState, UserStateStore

log = logging.getLogger(__name__)

FEATURE_WRITE_ATTEMPTS = 3


@dataclass(frozen=True)
class Click:
    event: ClickEvent
    partition: int
    received_at: float  # time.monotonic() when the worker took the message


@dataclass
class BatchResult:
    recommendations: list[Recommendation] = field(default_factory=list)
    duplicates: list[ClickEvent] = field(default_factory=list)
    degraded: bool = False
    # Newest feature row per user of the batch, for :meth:`RecommenderCore.write_features`.
    features: list[UserFeatures] = field(default_factory=list)


@dataclass(frozen=True)
class RankingConfig:
    top_k: int = 10
    max_candidates: int = 100
    recent_items: int = 50
    seen_limit: int = 2000


class RecommenderCore:
    def __init__(
        self,
        users: UserStateStore,
        stats: ItemStats,
        catalog: Catalog,
        scorer: CircuitBreaker,
        features: OnlineFeatureStore | None,
        config: RankingConfig = RankingConfig(),
    ) -> None:
        self.users, self.stats, self.catalog = users, stats, catalog
        self.scorer, self.features, self.config = scorer, features, config

    async def process(self, batch: Sequence[Click]) -> BatchResult:
        """Apply a batch to state and rank; the caller publishes, then writes features.

        Features are written after publishing so the feature store's latency is not
        on the click-to-recommendation path; the batch is acknowledged only after
        both, so a failed write is retried from Kafka rather than lost.
        """
        result = BatchResult()
        accepted: list[tuple[Click, UserState]] = []
        for click in batch:
            ev = click.event
            user = self.users.get(ev.user_id)
            if user.has_event(ev.event_id):
                # A replay of a click we already answered: no state change, no second answer.
                result.duplicates.append(ev)
                continue
            previous = list(user.recent)
            ts = ev.ts.timestamp()
            user.record(
                ev.event_id, ev.item_id, ts, self.config.recent_items, self.config.seen_limit
            )
            self.stats.observe(ev.item_id, previous, ts)
            self.users.put(ev.user_id, user, click.partition)
            accepted.append((click, user))
        if not accepted:
            return result

        # Each answer reflects its user's state right after that click (a user with
        # two clicks in one batch gets two answers, each excluding what was seen then).
        cands = [
            cand.generate(user, self.stats, self.config.max_candidates) for _, user in accepted
        ]
        scored, degraded = await self.scorer.score(cand.pad(cands))
        result.degraded = degraded
        now = datetime.now(UTC)
        for row, ((click, _), c) in enumerate(zip(accepted, cands, strict=True)):
            result.recommendations.append(
                self._recommendation(
                    click, c, scored.scores[row], scored.model_version, degraded, now
                )
            )
        result.features = self._feature_rows(accepted)
        return result

    def _recommendation(
        self,
        click: Click,
        c: cand.Candidates,
        scores: np.ndarray,
        model_version: str,
        degraded: bool,
        now: datetime,
    ) -> Recommendation:
        n = len(c.items)
        order = np.argsort(-scores[:n], kind="stable")[: self.config.top_k]
        items = [
            RecommendedItem(
                item_id=c.items[i],
                score=round(float(scores[i]), 6),
                reasons=self._reasons(c.sources[i]),
            )
            for i in order
        ]
        return Recommendation(
            user_id=click.event.user_id,
            event_id=click.event.event_id,
            items=items,
            model_version=model_version,
            segment=None,
            generated_at=now,
            latency_ms=round((time.monotonic() - click.received_at) * 1000.0, 3),
            degraded=degraded,
        )

    def _reasons(self, source: tuple[str, str | None]) -> list[str]:
        kind, item = source
        if kind == "covisitation" and item is not None:
            return [f"because you clicked «{self.catalog.title(item)}»"]
        if kind == "trending":
            return ["trending now"]
        return ["popular with everyone"]

    def _feature_rows(self, accepted: list[tuple[Click, UserState]]) -> list[UserFeatures]:
        latest: dict[str, UserFeatures] = {}
        for click, user in accepted:
            ev = click.event
            latest[ev.user_id] = UserFeatures(
                user_id=ev.user_id,
                event_ts=datetime.fromtimestamp(user.last_ts, UTC),
                click_count=user.clicks,
                last_item_id=user.recent[0],
                recent_items=tuple(user.recent),
            )
        return list(latest.values())

    async def write_features(self, result: BatchResult) -> None:
        """One feature-store push per batch, retried with backoff, raising if it keeps failing."""
        if self.features is None or not result.features:
            return
        for attempt in range(1, FEATURE_WRITE_ATTEMPTS + 1):
            try:
                await asyncio.to_thread(self.features.push_user_features, result.features)
                return
            except Exception as exc:  # the store's client raises many types
                if attempt == FEATURE_WRITE_ATTEMPTS:
                    raise
                log.warning("feature write failed (%s); retry %d", exc, attempt)
                await asyncio.sleep(0.2 * 2**attempt)
