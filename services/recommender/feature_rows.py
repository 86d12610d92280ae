"""The feature rows the worker writes through to the feature store, and writing them.

Rows are built from the worker's state right after it changed: a user's row after their
click, an item's activity row after the batch that clicked it, an item's catalog row when
its text was embedded. Each is a snapshot stamped with the event time it describes, so
the store's latest-event-wins guard can order them whichever worker wrote them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np

from services.contract.events import ItemEvent
from services.features.model import (
    MAX_COVISITED,
    NO_SEGMENT,
    ItemActivityFeatures,
    ItemFeatures,
    UserFeatures,
)
from services.features.store import OnlineFeatureStore
from services.recommender.state import ItemStats, UserState
from services.recommender.windows import DAY_S, HOUR_S, KeyedWindows

log = logging.getLogger(__name__)

FEATURE_WRITE_ATTEMPTS = 3
# Row times are built from integer microseconds (exact; a float epoch is not).
ROW_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Retries of a failing store write back off up to this; while it fails the batch waits.
MAX_WRITE_BACKOFF_S = 5.0

R = TypeVar("R")


@dataclass
class FeatureRows:
    """One micro-batch's rows: the newest per user, and one per item it clicked."""

    users: list[UserFeatures] = field(default_factory=list)
    items: list[ItemActivityFeatures] = field(default_factory=list)


def user_row(
    user_id: str, user: UserState, vector: np.ndarray, segment: int | None
) -> UserFeatures:
    """``user`` right after a click, with their vector and segment at that click."""
    return UserFeatures(
        user_id=user_id,
        event_ts=ROW_EPOCH + timedelta(microseconds=user.row_us),
        click_count=user.clicks,
        last_item_id=user.recent[0],
        recent_items=tuple(user.recent),
        segment=NO_SEGMENT if segment is None else int(segment),
        clicks_1h=user.clicks_1h,
        clicks_24h=user.clicks_24h,
        embedding=tuple(np.asarray(vector, np.float32).tolist()),
    )


def item_activity_row(
    item_id: str, stats: ItemStats, windows: KeyedWindows
) -> ItemActivityFeatures | None:
    """The item's click statistics as of its newest click; None if it has none counted."""
    newest = windows.newest(item_id)
    if newest is None:
        return None
    covisited = tuple(stats.covisited(item_id, MAX_COVISITED))
    return ItemActivityFeatures(
        item_id=item_id,
        event_ts=datetime.fromtimestamp(newest, UTC),
        popularity=stats.popularity.get(item_id, 0),
        popularity_1h=windows.count(item_id, HOUR_S),
        popularity_24h=windows.count(item_id, DAY_S),
        trending=float(stats.trending(item_id)),
        covisited=covisited,
    )


def catalog_rows(
    items: Iterable[tuple[ItemEvent, np.ndarray | None]], now: datetime
) -> list[ItemFeatures]:
    """Catalog rows of the items that have an embedding; those without wait for one.

    Writing an item before its embedding would use up its event time: with the same
    ``ts`` the row carrying the vector would then lose to it. An item event without a
    ``ts`` is stamped ``now``, when it was embedded.
    """
    rows = []
    for item, vector in items:
        if vector is None:
            continue
        vec = np.asarray(vector, np.float32).reshape(-1)
        norm = float(np.linalg.norm(vec))
        if norm > 0:
            vec = vec / norm  # as the embedding index holds it, so dot products are cosines
        rows.append(
            ItemFeatures(
                item_id=item.item_id,
                event_ts=item.ts or now,
                title=item.title,
                categories=tuple(item.categories or ()),
                embedding=tuple(vec.tolist()),
            )
        )
    return rows


@dataclass
class StoreOutage:
    """An ongoing failure to write the online store, as /healthz reports it."""

    since: float | None = None  # time.time() of the first failure of the current outage
    failures: int = 0  # failed attempts in the current outage
    last_error: str | None = None
    outages: int = 0  # outages seen since the worker started

    def failed(self, exc: BaseException) -> None:
        if self.since is None:
            self.since = time.time()
            self.outages += 1
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def recovered(self) -> None:
        self.since, self.failures, self.last_error = None, 0, None

    def to_json(self) -> dict[str, Any]:
        return {
            "down_for_s": None if self.since is None else round(time.time() - self.since, 1),
            "failures": self.failures,
            "last_error": self.last_error,
            "outages": self.outages,
        }


async def push_with_retries(
    push: Callable[[Sequence[R]], int],
    rows: Sequence[R],
    attempts: int | None = FEATURE_WRITE_ATTEMPTS,
    outage: StoreOutage | None = None,
) -> int:
    """One push in a worker thread, retried with backoff (capped at
    ``MAX_WRITE_BACKOFF_S``). ``attempts=None`` retries until the write succeeds: a
    worker waits out a store outage rather than acknowledge clicks whose features were
    never written. Otherwise raises once ``attempts`` have failed."""
    if not rows:
        return 0
    attempt = 0
    while True:
        attempt += 1
        try:
            written = await asyncio.to_thread(push, rows)
        except Exception as exc:  # the store's client raises many types
            if outage is not None:
                outage.failed(exc)
            if attempts is not None and attempt >= attempts:
                raise
            delay = min(0.2 * 2**attempt, MAX_WRITE_BACKOFF_S)
            log.warning("feature write failed (%s); retry %d in %.1fs", exc, attempt, delay)
            await asyncio.sleep(delay)
            continue
        if outage is not None and outage.since is not None:
            log.warning(
                "feature store back after %.1fs and %d failed writes",
                time.time() - outage.since,
                outage.failures,
            )
            outage.recovered()
        return written


async def write_catalog_features(
    store: OnlineFeatureStore | None,
    items: Sequence[tuple[ItemEvent, np.ndarray | None]],
    now: datetime | None = None,
    outage: StoreOutage | None = None,
) -> int:
    """Write the catalog rows of freshly embedded items; returns how many were written.

    The items agent calls it with the (item, vector) pairs it embedded, before it
    acknowledges them; like the clicks' rows, the write is retried until the store takes
    it. ``now`` defaults to the wall clock (UTC).
    """
    if store is None:
        return 0
    rows = catalog_rows(items, now or datetime.now(UTC))
    return await push_with_retries(store.push_item_features, rows, attempts=None, outage=outage)
