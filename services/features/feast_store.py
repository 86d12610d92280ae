"""The Feast-backed online store: writes to the views a push source feeds, reads online
features."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from feast import FeatureStore, FeatureView
from feast.data_source import PushSource
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import compute_table_id as sqlite_table_id
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from redis.exceptions import RedisError

from services.features.errors import FeatureStoreError
from services.features.frames import ACTIVITY, ITEMS, LAST_EVENT_TS, USERS, ViewCodec
from services.features.guard import rows_to_write
from services.features.locks import FileLock, RedisLock, WriteLock
from services.features.model import (
    ItemActivityFeatures,
    ItemFeatures,
    Row,
    UserFeatures,
    from_epoch_us,
)
from services.features.offline import OfflineLog
from services.features.repo import build_feast_store
from services.features.settings import FeatureSettings

log = logging.getLogger(__name__)


class FeastFeatureStore:
    """``OnlineFeatureStore`` on Feast's SQLite or Redis online store, plus the offline log.

    Latest event wins on both backends, for every view. Within a batch each key's newest
    row is kept; against the store, one online read fetches the stored event times of the
    batch's keys, and only strictly newer rows are pushed. The read and the push run under
    a lock shared by every writer of the same store (a file for SQLite, a Redis key for
    Redis), so another process cannot write in between. A per-process cache of event
    times would save that read but cannot see other processes' writes (a rebalance, a
    replay job), and the read costs one round trip per micro-batch, not per event.

    The rows pushed online also go to the offline log (``services.features.offline``),
    for training.

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
        self._offline: OfflineLog | None = None
        if settings.online_store == "redis":
            self._redis = _redis_client(settings)
            self._where = f"the Redis online store at {settings.redis.describe()}"
        else:
            self._where = f"the SQLite online store at {settings.sqlite_path}"
        try:
            # Fail at start-up rather than on the first event.
            self._check_reachable()
            self._store = store if store is not None else build_feast_store(settings)
            self._tune_sqlite()
            if settings.offline_log:
                with self._translate_errors():
                    self._offline = OfflineLog(
                        self._store,
                        [codec.view for codec in (USERS, ITEMS, ACTIVITY)],
                        flush_rows=settings.offline_flush_rows,
                        flush_s=settings.offline_flush_s,
                    )
        except BaseException:
            self.close()
            raise
        self._lock = lock if lock is not None else self._default_lock()
        # Each push source's feature views, resolved from the registry on first use.
        self._views: dict[str, list[FeatureView]] = {}

    @property
    def feast(self) -> FeatureStore:
        """The underlying Feast store, for tooling that needs more than this seam."""
        return self._store

    @property
    def offline(self) -> OfflineLog | None:
        """The offline log, or None when ``offline_log`` is off."""
        return self._offline

    def push_user_features(self, rows: Sequence[UserFeatures]) -> int:
        return self._push(USERS, rows)

    def get_user_features(self, user_ids: Sequence[str]) -> dict[str, UserFeatures | None]:
        return self._get(USERS, user_ids)

    def push_item_features(self, rows: Sequence[ItemFeatures]) -> int:
        return self._push(ITEMS, rows)

    def get_item_features(self, item_ids: Sequence[str]) -> dict[str, ItemFeatures | None]:
        return self._get(ITEMS, item_ids)

    def push_item_activity(self, rows: Sequence[ItemActivityFeatures]) -> int:
        return self._push(ACTIVITY, rows)

    def get_item_activity(self, item_ids: Sequence[str]) -> dict[str, ItemActivityFeatures | None]:
        return self._get(ACTIVITY, item_ids)

    def flush_offline(self) -> int:
        """Write the offline log's pending rows now; returns how many."""
        if self._offline is None:
            return 0
        with self._translate_errors():
            return self._offline.flush()

    def _push(self, codec: ViewCodec[Row], rows: Sequence[Row]) -> int:
        if not rows:
            return 0  # Feast warns on an empty frame, and there is nothing to guard.
        with self._translate_errors():
            with self._lock.hold():
                stored = self._stored_event_ts(codec, {row.key for row in rows})
                fresh = rows_to_write(rows, stored)
                if not fresh:
                    return 0
                prepared = codec.prepare(fresh)
                # One write per view per call: the caller sized the micro-batch. What
                # ``ingest_df`` would write, built without its frame (frames.py).
                provider = self._store._get_provider()
                for view in self._views_fed_by(codec):
                    types = {f.name: f.dtype.to_value_type() for f in view.features}
                    provider.online_write_batch(
                        self._store.config, view, prepared.online_rows(types), None
                    )
            # Outside the lock: the log's order does not matter (training joins on event
            # time), and a flush may take a while. After the push, so a failed push that
            # the caller retries is logged once.
            if self._offline is not None:
                self._offline.append(codec.view, prepared.frame())
        return len(fresh)

    def _get(self, codec: ViewCodec[Row], keys: Sequence[str]) -> dict[str, Row | None]:
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        with self._translate_errors():
            data = self._store.get_online_features(
                features=codec.refs(), entity_rows=[{codec.join_key: k} for k in unique]
            ).to_dict()
        return codec.read(unique, data)

    def close(self) -> None:
        """Write the offline log's pending rows and drop the Redis connection."""
        try:
            if self._offline is not None:
                with self._translate_errors():
                    self._offline.close()
        finally:
            if self._redis is not None:
                self._redis.close()

    def _views_fed_by(self, codec: ViewCodec[Row]) -> list[FeatureView]:
        """The feature views ``codec``'s push source feeds, resolved once.

        What ``FeatureStore.push`` writes to, without its per-call registry work:
        ``push`` and ``get_online_features`` turn the registry's protos back into feature
        views on every call, two thirds of a 10-row push's ~13 ms on SQLite
        (docs/BENCHMARKS.md, "Feast online store"). The worker reads the registry once at
        start-up anyway (``services.features.repo``), so the views cannot go stale here.
        """
        views = self._views.get(codec.push_source)
        if views is None:
            views = [
                view
                for view in self._store.list_feature_views()
                if isinstance(view.stream_source, PushSource)
                and view.stream_source.name == codec.push_source
            ]
            if not views:
                raise FeatureStoreError(
                    f"no feature view is fed by the push source {codec.push_source!r}; run "
                    "`streamrec features apply` against feature_repo/"
                )
            self._views[codec.push_source] = views
        return views

    def _stored_event_ts(self, codec: ViewCodec[Row], keys: set[str]) -> dict[str, datetime | None]:
        """Each key's stored ``last_event_ts``, None if it has no row: one online read of
        the view's one column, straight from the provider (see :meth:`_views_fed_by`)."""
        ordered = sorted(keys)
        view = next((v for v in self._views_fed_by(codec) if v.name == codec.view), None)
        if view is None:
            raise FeatureStoreError(
                f"the feature view {codec.view!r} is not fed by the push source "
                f"{codec.push_source!r}; feature_repo/ and services/features/frames.py disagree"
            )
        entity_keys = [codec.entity_key(k) for k in ordered]
        provider = self._store._get_provider()
        found: list[Value | None]
        if isinstance(provider.online_store, SqliteOnlineStore):
            found = self._sqlite_event_ts(provider.online_store, view, entity_keys)
        else:  # Redis reads only the column asked for
            rows = provider.online_read(self._store.config, view, entity_keys, [LAST_EVENT_TS])
            found = [(values or {}).get(LAST_EVENT_TS) for _, values in rows]
        stored: dict[str, datetime | None] = {}
        for key, value in zip(ordered, found, strict=True):
            if value is None or value.WhichOneof("val") != "int64_val":
                stored[key] = None  # no row yet (or one written without the column)
            else:
                stored[key] = from_epoch_us(value.int64_val)
        return stored

    def _sqlite_event_ts(
        self, online: SqliteOnlineStore, view: FeatureView, entity_keys: list[EntityKey]
    ) -> list[Value | None]:
        """``last_event_ts`` of each key from Feast's SQLite table, that column alone.

        Feast's SQLite ``online_read`` ignores the features asked for: it reads and parses
        every feature of every key (a user row's 384-float embedding included), a sixth of
        a push's CPU. Same table, same keys, one indexed lookup per key here; the
        integration tests read through Feast after writing, so a change of Feast's layout
        fails them.
        """
        config = self._store.config
        table = sqlite_table_id(
            config.project, view, config.registry.enable_online_feature_view_versioning
        )
        version = config.entity_key_serialization_version
        serialized = [
            serialize_entity_key(k, entity_key_serialization_version=version) for k in entity_keys
        ]
        rows = (
            online._get_conn(config)
            .execute(
                f'SELECT entity_key, value FROM "{table.replace(chr(34), chr(34) * 2)}" '
                f"WHERE feature_name = ? AND entity_key IN ({','.join('?' * len(serialized))})",
                [LAST_EVENT_TS, *serialized],
            )
            .fetchall()
        )
        values: dict[bytes, Value] = {}
        for key, blob in rows:
            value = Value()
            value.ParseFromString(blob)
            values[bytes(key)] = value
        return [values.get(k) for k in serialized]

    def _tune_sqlite(self) -> None:
        """Write-ahead logging on Feast's SQLite connection, synced as the settings say
        (``FeatureSettings.sqlite_synchronous``): the mode stays with the file, the sync
        level with this connection, which Feast keeps for every later read and write."""
        online = self._store._get_provider().online_store
        if not isinstance(online, SqliteOnlineStore):
            return
        with self._translate_errors():
            conn = online._get_conn(self._store.config)
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode != "wal":
                # SQLite keeps the old mode where WAL cannot work (no shared memory, as on
                # some network filesystems): still correct, only slower.
                log.warning("%s stays in %s journal mode (WAL refused)", self._where, mode)
            conn.execute(f"PRAGMA synchronous={self._settings.sqlite_synchronous.upper()}")

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
