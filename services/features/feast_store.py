"""The Feast-backed online store: writes through the push source, reads online features."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pandas as pd
from feast import FeatureStore
from feast.data_source import PushMode
from redis.exceptions import RedisError

from services.features.errors import FeatureStoreError
from services.features.locks import FileLock, RedisLock, WriteLock
from services.features.model import (
    UserFeatures,
    decode_recent_items,
    encode_recent_items,
    from_epoch_us,
    normalise,
    rows_to_write,
    to_epoch_us,
)
from services.features.repo import FEATURE_VIEW, PUSH_SOURCE, build_feast_store
from services.features.settings import FeatureSettings

_FEATURES = ("click_count", "last_item_id", "recent_items", "last_event_ts")
_REFS = [f"{FEATURE_VIEW}:{name}" for name in _FEATURES]
_TS_REF = [f"{FEATURE_VIEW}:last_event_ts"]


class FeastFeatureStore:
    """``OnlineFeatureStore`` on Feast's SQLite or Redis online store.

    Latest event wins on both backends. Within a batch each user's newest row is kept;
    against the store, one online read fetches the stored event times of the batch's
    users, and only strictly newer rows are pushed. The read and the push run under a
    lock shared by every writer of the same store (a file for SQLite, a Redis key for
    Redis), so another process cannot write in between. A per-process cache of event
    times would save that read but cannot see other processes' writes (a rebalance, a
    replay job), and the read costs one round trip per micro-batch, not per event.

    Calls block; an asyncio caller should run them in an executor.
    """

    def __init__(
        self,
        settings: FeatureSettings,
        *,
        store: FeatureStore | None = None,
        lock: WriteLock | None = None,
    ) -> None:
        self._settings = settings
        self._redis: Any = None
        if settings.online_store == "redis":
            self._redis = _redis_client(settings)
            self._where = f"the Redis online store at {settings.redis.describe()}"
        else:
            self._where = f"the SQLite online store at {settings.sqlite_path}"
        try:
            # Fail at start-up rather than on the first event.
            self._check_reachable()
            self._store = store if store is not None else build_feast_store(settings)
        except BaseException:
            self.close()
            raise
        self._lock = lock if lock is not None else self._default_lock()

    @property
    def feast(self) -> FeatureStore:
        """The underlying Feast store, for tooling that needs more than this seam."""
        return self._store

    def push_user_features(self, rows: Sequence[UserFeatures]) -> int:
        if not rows:
            return 0  # Feast warns on an empty frame, and there is nothing to guard.
        with self._translate_errors(), self._lock.hold():
            stored = self._stored_event_ts({row.user_id for row in rows})
            fresh = rows_to_write(rows, stored)
            if fresh:
                # One push per call: the caller sized the micro-batch.
                self._store.push(PUSH_SOURCE, _to_frame(fresh), to=PushMode.ONLINE)
        return len(fresh)

    def get_user_features(self, user_ids: Sequence[str]) -> dict[str, UserFeatures | None]:
        unique = list(dict.fromkeys(user_ids))
        if not unique:
            return {}
        with self._translate_errors():
            data = self._store.get_online_features(
                features=_REFS, entity_rows=[{"user_id": u} for u in unique]
            ).to_dict()
        result: dict[str, UserFeatures | None] = {}
        for i, user_id in enumerate(unique):
            ts = data["last_event_ts"][i]
            if ts is None:
                result[user_id] = None
                continue
            result[user_id] = UserFeatures(
                user_id=user_id,
                event_ts=from_epoch_us(ts),
                click_count=data["click_count"][i],
                last_item_id=data["last_item_id"][i],
                recent_items=decode_recent_items(data["recent_items"][i]),
            )
        return result

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()

    def _stored_event_ts(self, user_ids: set[str]) -> dict[str, datetime | None]:
        ordered = sorted(user_ids)
        data = self._store.get_online_features(
            features=_TS_REF, entity_rows=[{"user_id": u} for u in ordered]
        ).to_dict()
        return {
            user_id: None if ts is None else from_epoch_us(ts)
            for user_id, ts in zip(ordered, data["last_event_ts"], strict=True)
        }

    def _default_lock(self) -> WriteLock:
        if self._redis is not None:
            # One lock per project and database: the data it protects is shared by every
            # stack pointing at this Redis, whatever their data_dir.
            return RedisLock(self._redis, f"streamrec:{self._settings.project}:push-lock")
        return FileLock(self._settings.data_dir / "push.lock")

    def _check_reachable(self) -> None:
        with self._translate_errors():
            if self._redis is not None:
                self._redis.ping()
            else:
                self._settings.data_dir.mkdir(parents=True, exist_ok=True)
                sqlite3.connect(self._settings.sqlite_path).close()

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except RedisError as exc:
            raise FeatureStoreError(
                f"{self._where} is unreachable ({exc}). Start Redis there, point "
                "STREAMREC_FEAST_REDIS_URL at a running server, or set "
                "STREAMREC_FEAST_ONLINE_STORE=sqlite for a single-host run."
            ) from exc
        except (sqlite3.Error, OSError) as exc:
            raise FeatureStoreError(
                f"{self._where} failed ({exc}). Check that STREAMREC_FEAST_DATA_DIR is a "
                "writable local folder and that no other program holds the database."
            ) from exc


def _redis_client(settings: FeatureSettings) -> Any:
    import redis

    return redis.Redis(**settings.redis.client_kwargs())


def _to_frame(rows: Sequence[UserFeatures]) -> pd.DataFrame:
    rows = [normalise(row) for row in rows]
    return pd.DataFrame(
        {
            "user_id": [row.user_id for row in rows],
            "event_timestamp": pd.to_datetime([row.event_ts for row in rows], utc=True),
            "click_count": pd.Series([row.click_count for row in rows], dtype="int64"),
            "last_item_id": [row.last_item_id for row in rows],
            "recent_items": [encode_recent_items(row.recent_items) for row in rows],
            "last_event_ts": pd.Series([to_epoch_us(row.event_ts) for row in rows], dtype="int64"),
        }
    )
